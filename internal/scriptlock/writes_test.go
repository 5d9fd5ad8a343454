package scriptlock_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

type noteKey struct{}

// writeLog collects what OnWrite is told, with the note the caller put in
// its context.
type writeLog struct {
	mu     sync.Mutex
	writes []scriptlock.Write
	notes  []string
}

func (l *writeLog) observe(ctx context.Context, w scriptlock.Write) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, w)
	n, _ := ctx.Value(noteKey{}).(string)
	l.notes = append(l.notes, n)
}

// TestOnWriteIsToldOfEveryWriteSentOnce: each POST, PUT and DELETE the
// simulator answered is reported once, in order, with its outcome, its
// record id and the caller's context; a read, a listing, a write refused
// before sending (an invalid id, a prepare hook that failed) is not.
func TestOnWriteIsToldOfEveryWriteSentOnce(t *testing.T) {
	s, ts := startSim(t)
	log := &writeLog{}
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.OnWrite = log.observe })
	note := func(n string) context.Context { return context.WithValue(ctx(t), noteKey{}, n) }

	rec, err := c.Create(note("first create"), example)
	noError(t, err)
	if _, err := c.Create(note("same email"), example); !scriptlock.IsConflict(err) {
		t.Fatalf("second create: %v", err)
	}
	changed := example
	changed.LastName = "Changed"
	_, err = c.Update(note("change"), rec.ID, changed)
	noError(t, err)
	_, err = c.Update(note("again"), rec.ID, changed)
	noError(t, err)
	_, err = c.Get(note("read"), rec.ID)
	noError(t, err)
	_, err = c.List(note("list"))
	noError(t, err)
	_, err = c.Update(note("invalid id"), "..", changed)
	if err == nil {
		t.Fatal("an invalid id was sent")
	}
	_, err = c.CreateAfter(note("prepare failed"), example, func(context.Context) error { return errors.New("no") })
	if err == nil {
		t.Fatal("a create whose prepare failed was sent")
	}
	s.FailNext(http.MethodDelete, sim.RouteCustomerID, 1, http.StatusServiceUnavailable, 0)
	_, err = c.Delete(note("delete 503"), rec.ID)
	if err == nil {
		t.Fatal("the 503 was not reported")
	}
	_, err = c.Delete(note("delete"), rec.ID)
	noError(t, err)
	_, err = c.Delete(note("delete again"), rec.ID)
	noError(t, err)

	want := []struct {
		note, op, method, id string
		status               int
		result               scriptlock.WriteResult
	}{
		{"first create", "create", "POST", rec.ID, 201, scriptlock.WriteCreated},
		{"same email", "create", "POST", "", 409, scriptlock.WriteConflict},
		{"change", "update", "PUT", rec.ID, 200, scriptlock.WriteUpdated},
		{"again", "update", "PUT", rec.ID, 304, scriptlock.WriteUnchanged},
		{"delete 503", "delete", "DELETE", rec.ID, 503, scriptlock.WriteServerError},
		{"delete", "delete", "DELETE", rec.ID, 410, scriptlock.WriteDeleted},
		{"delete again", "delete", "DELETE", rec.ID, 404, scriptlock.WriteAlreadyGone},
	}
	if len(log.writes) != len(want) {
		t.Fatalf("%d writes reported, want %d: %+v", len(log.writes), len(want), log.notes)
	}
	for i, w := range want {
		got := log.writes[i]
		if log.notes[i] != w.note || got.Operation != w.op || got.Method != w.method || got.RecordID != w.id ||
			got.StatusCode != w.status || got.Result != w.result || got.Account != c.Account() {
			t.Errorf("write %d: got %q %+v, want %+v", i, log.notes[i], got, w)
		}
		if (got.Err == nil) != (w.status < 300 || w.result == scriptlock.WriteUnchanged || w.result == scriptlock.WriteDeleted || w.result == scriptlock.WriteAlreadyGone) {
			t.Errorf("write %d: error %v", i, got.Err)
		}
		if fmt.Sprintf("%+v", got) == "" || containsKey(fmt.Sprintf("%+v %v", got, got.Err)) {
			t.Errorf("write %d carries the key", i)
		}
	}
	// The simulator saw exactly these writes.
	var sent int
	for _, call := range s.CallLog() {
		if call.Method != http.MethodGet {
			sent++
		}
	}
	if sent != len(want) {
		t.Fatalf("the simulator saw %d writes, OnWrite was told of %d", sent, len(want))
	}
}

// TestALostAnswerIsAWriteWithNoAnswer: a create whose connection is
// dropped after ScriptLock stored it is reported as sent, result noAnswer,
// without a record id.
func TestALostAnswerIsAWriteWithNoAnswer(t *testing.T) {
	s, ts := startSim(t)
	log := &writeLog{}
	c := newClient(t, ts.URL, testKey, func(o *scriptlock.Options) { o.OnWrite = log.observe })
	s.LoseNextCreate(sim.LoseByDroppingConnection)
	if _, err := c.Create(ctx(t), example); !scriptlock.IsMaybeCreated(err) {
		t.Fatalf("create: %v", err)
	}
	if len(log.writes) != 1 || log.writes[0].Result != scriptlock.WriteNoAnswer || log.writes[0].StatusCode != 0 || log.writes[0].RecordID != "" {
		t.Fatalf("writes %+v", log.writes)
	}
}

func containsKey(s string) bool {
	for i := 0; i+len(testKey) <= len(s); i++ {
		if s[i:i+len(testKey)] == testKey {
			return true
		}
	}
	return false
}
