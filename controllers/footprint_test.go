package controllers

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// footprintN is how many Customers the footprint tests hold at once: the
// per-Customer bytes are the heap's growth over that many, so one-off
// allocations (a map's first buckets) weigh little.
const footprintN = 5000

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// readyCustomerJSON is Customer i as the API server sends it once the
// operator made it Ready: defaults filled in, the finalizer, the create-time
// proof annotation (void once a record is bound, but left on the object),
// the status.
func readyCustomerJSON(i int) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"licensing.scriptlock.com/v1alpha1","kind":"Customer",
"metadata":{"name":"bench-%06d","namespace":"bench","uid":"6f1c2a7e-0b7d-4c1e-9a55-%012d","resourceVersion":"%d","generation":1,
"creationTimestamp":"2026-12-07T08:00:00Z","finalizers":["licensing.scriptlock.com/finalizer"],
"annotations":{"licensing.scriptlock.com/pending-create":"{\"uid\":\"6f1c2a7e-0b7d-4c1e-9a55-%012d\",\"account\":\"3f9a0c1b2d4e\",\"email\":\"bench-%d@example.com\",\"digests\":[\"045fe30903deff0d\"],\"since\":\"2026-12-07T08:00:00Z\"}"},
"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"licensing.scriptlock.com/v1alpha1","time":"2026-12-07T08:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{".":{},"f:email":{},"f:firstName":{},"f:lastName":{}}}}]},
"spec":{"company":"Company %d Inc.","firstName":"First%d","lastName":"Last%d","email":"bench-%d@example.com","deletionPolicy":"Delete","adoption":"Never","managementPolicy":"Manage"},
"status":{"customerID":"%d","account":"3f9a0c1b2d4e","url":"http://127.0.0.1:38145","syncedDigest":"a1b2c3d4e5f60718","observedGeneration":1,
"conditions":[{"type":"Ready","status":"True","observedGeneration":1,"lastTransitionTime":"2026-12-07T08:00:01Z","reason":"Available","message":"ScriptLock customer %d matches the spec"}]}}`,
		i, i, 1000+i, i, i, i, i, i, i, i, i)
}

// What the operator holds per Customer, measured on the heap: the object
// as the informer cache keeps it (after CacheTransform), the operator's
// memory of its record, and its entries in the claims index. The bounds
// are a little above what was measured (go1.26, amd64: 992, 349 and 236
// bytes; 1,552 for the object before the cache kept a bound Customer's void
// create-time proof as a mark only, 1,128 and 637 before the cache
// interned the shared strings and the memory kept its rarely used fields
// out of line); a change that makes
// a Customer cost more fails here before a benchmark sees it. The informer's
// own store and namespace index (a key and two map entries) are not
// counted.
func TestBytesHeldPerCustomer(t *testing.T) {
	s := k8sruntime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	raw := make([][]byte, footprintN)
	for i := range raw {
		raw[i] = readyCustomerJSON(i)
	}
	transform := CacheTransform()
	objs := make([]*v1alpha1.Customer, footprintN)
	keys := make([]types.NamespacedName, footprintN)

	base := liveHeap()
	for i := range objs {
		c := &v1alpha1.Customer{}
		if _, _, err := dec.Decode(raw[i], nil, c); err != nil {
			t.Fatal(err)
		}
		out, err := transform(c)
		if err != nil {
			t.Fatal(err)
		}
		objs[i] = out.(*v1alpha1.Customer)
		keys[i] = types.NamespacedName{Namespace: objs[i].Namespace, Name: objs[i].Name}
	}
	cached := liveHeap()

	cl := testClient(t, "k")
	mem := newCustomerMemory(newAccountRegistry(clock.RealClock{}))
	now := time.Now()
	for i, c := range objs {
		// The record as ScriptLock's answer decodes it: strings of its own.
		rec := scriptlock.Customer{ID: strconv.Itoa(i), Company: "Company " + strconv.Itoa(i) + " Inc.",
			FirstName: "First" + strconv.Itoa(i), LastName: "Last" + strconv.Itoa(i), Email: "bench-" + strconv.Itoa(i) + "@example.com"}
		// What a create leaves: a look for the pending create, a pass
		// that waited for the account's rate and then went on, the
		// record seen in sync, the operator's own status write.
		mem.lookedAt(keys[i], now)
		mem.waited(keys[i], c.Generation, c.ResourceVersion, now)
		mem.requestedSince(keys[i], "", now)
		mem.endWait(keys[i])
		mem.synced(keys[i], cl, "", rec, now)
		mem.wroteObject(keys[i], c.ResourceVersion)
	}
	remembered := liveHeap()

	cls := newClaims()
	for i, c := range objs {
		cls.set(keys[i], nil, claimsOf(c))
	}
	claimed := liveHeap()
	runtime.KeepAlive(raw)
	runtime.KeepAlive(objs)
	runtime.KeepAlive(mem)
	runtime.KeepAlive(cls)

	per := func(from, to uint64) int64 { return (int64(to) - int64(from)) / footprintN }
	for _, tt := range []struct {
		what  string
		bytes int64
		bound int64
	}{
		{"the cached object (CacheTransform)", per(base, cached), 1050},
		{"the memory of its record (customerMemory)", per(cached, remembered), 400},
		{"its claims (claims index)", per(remembered, claimed), 260},
	} {
		t.Logf("%s: %d bytes a Customer", tt.what, tt.bytes)
		if tt.bytes > tt.bound {
			t.Errorf("%s: %d bytes a Customer, want at most %d", tt.what, tt.bytes, tt.bound)
		}
	}
}

// The cache keeps a bound Customer's create-time proof as a mark: still
// there (so that it is removed before a binding is cleared), never a proof
// (pendingOf), and a copy read from the cache is the reader's own. An
// unbound Customer's proof is kept whole.
func TestTheCacheKeepsABoundCustomersProofAsAMark(t *testing.T) {
	s := k8sruntime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	cached := func(mutate func(c *v1alpha1.Customer)) *v1alpha1.Customer {
		c := &v1alpha1.Customer{}
		if _, _, err := dec.Decode(readyCustomerJSON(7), nil, c); err != nil {
			t.Fatal(err)
		}
		mutate(c)
		out, err := CacheTransform()(c)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*v1alpha1.Customer)
	}

	bound := cached(func(*v1alpha1.Customer) {})
	if v, ok := bound.Annotations[v1alpha1.PendingCreateAnnotation]; !ok || v != voidProof || pendingOf(bound) != nil {
		t.Fatalf("bound: proof annotation %q (present %v), pendingOf %+v; want the mark %q and no proof", v, ok, pendingOf(bound), voidProof)
	}
	// A reader's copy is its own: removing the proof from it (dropPending)
	// leaves every cached Customer's mark.
	other := cached(func(*v1alpha1.Customer) {})
	cp := bound.DeepCopy()
	if !dropPending(cp) {
		t.Fatal("dropPending on a copy of a bound Customer: the proof was not there")
	}
	if _, ok := other.Annotations[v1alpha1.PendingCreateAnnotation]; !ok {
		t.Fatal("removing the proof from one copy removed it from another cached Customer")
	}

	labelled := cached(func(c *v1alpha1.Customer) { c.Annotations["team"] = "sales" })
	if labelled.Annotations["team"] != "sales" || labelled.Annotations[v1alpha1.PendingCreateAnnotation] != voidProof {
		t.Fatalf("bound with another annotation: %v", labelled.Annotations)
	}

	unbound := cached(func(c *v1alpha1.Customer) { c.Status.CustomerID = "" })
	if p := pendingOf(unbound); p == nil || p.UID != string(unbound.UID) || p.Email != "bench-7@example.com" {
		t.Fatalf("unbound: pendingOf = %+v, want its whole proof", p)
	}
}
