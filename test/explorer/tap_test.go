package explorer

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/scriptlock/customer-operator/internal/explore"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// tap stands in front of one simulator and sees every call the operator
// makes: it checks each PUT and DELETE against the ledger at the moment it
// is sent, tells the ledger who made each record a POST stores and how
// each POST was answered (or that the manager never read the answer),
// counts the calls, and crashes the manager right after an armed write.
type tap struct {
	w  *world
	in *instance
}

func (t *tap) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		t.in.sim.ServeHTTP(rw, r)
		return
	}
	w := t.w
	w.count("calls")
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
	acct := w.account(t.in.name, key)
	id, _ := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), sim.RouteCustomer+"/"))
	write := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodDelete
	var (
		live   map[string]explore.CustomerView
		before scriptlock.Customer
		exists bool
		had    map[string]bool
		form   url.Values
	)
	if write {
		live = w.liveViews()
		if r.Method == http.MethodPost {
			had = map[string]bool{}
			for _, c := range t.in.sim.Records(key) {
				had[c.ID] = true
			}
		} else {
			before, exists = t.in.sim.Record(key, id)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ = url.ParseQuery(string(body))
	}

	rec := &recorder{rw: rw, header: http.Header{}}
	t.in.sim.ServeHTTP(rec, r)
	// The write is done; is this the one the manager crashes after?
	crash := write && !rec.hijacked && w.countdown(&w.crashSL)

	switch r.Method {
	case http.MethodPut, http.MethodDelete:
		w.count(r.Method)
		wr := explore.Write{Method: r.Method, Ref: explore.RecordRef{Account: acct, ID: id}, Before: record(acct, before), Exists: exists}
		if v := w.led.CheckWrite(wr, live); v != nil {
			w.violate(*v)
		}
		if stored := rec.status == 0 || rec.status/100 == 2 || rec.status == http.StatusNotModified; r.Method == http.MethodPut && !rec.hijacked && stored {
			// Stored: the record is what the operator sent.
			w.led.Wrote(wr.Ref)
		}
	case http.MethodPost:
		w.count("POST")
		email := form.Get("email")
		status := rec.status
		if rec.hijacked {
			status = 0
		} else if status == 0 {
			status = http.StatusOK
		}
		w.led.Posted(explore.Post{Account: acct, Company: form.Get("company"), First: form.Get("firstname"), Last: form.Get("lastname"),
			Email: email, Status: status, Crashed: crash}, live)
		for _, c := range t.in.sim.Records(key) {
			if had[c.ID] || !strings.EqualFold(c.Email, email) {
				continue
			}
			ref := explore.RecordRef{Account: acct, ID: c.ID}
			if w.led.Attribute(ref, email, live) == "" {
				w.violate(explore.Violation{Kind: explore.CreateWithoutProof, Detail: "POST stored " + ref.String() + " (" + email + ") while no Customer held a create-time proof for it"})
			}
		}
	}
	if crash {
		// The operator never hears of the write.
		w.count("crash-after-scriptlock-write")
		w.crashSoon()
		<-r.Context().Done()
		return
	}
	rec.flush()
}

func record(a explore.Account, c scriptlock.Customer) explore.Record {
	return explore.Record{Ref: explore.RecordRef{Account: a, ID: c.ID}, Company: c.Company, First: c.FirstName, Last: c.LastName, Email: c.Email}
}

// recorder holds an answer back until the tap decides to pass it on; a
// dropped connection (Hijack) goes straight through.
type recorder struct {
	rw       http.ResponseWriter
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked = true
	return http.NewResponseController(r.rw).Hijack()
}

func (r *recorder) flush() {
	if r.hijacked {
		return
	}
	for k, v := range r.header {
		r.rw.Header()[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.rw.WriteHeader(r.status)
	_, _ = r.rw.Write(r.body.Bytes())
}
