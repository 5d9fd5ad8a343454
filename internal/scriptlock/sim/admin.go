package sim

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// serveAdmin serves the /_sim/ admin API. It changes the simulator's state
// without authentication, so it answers only loopback clients.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		adminError(w, http.StatusForbidden, "the admin API answers loopback clients only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s.admin.ServeHTTP(w, r)
}

// adminMux routes the admin API; built once in New.
func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/records", s.adminListRecords)
	mux.HandleFunc("POST /_sim/records", s.adminPutRecord)
	mux.HandleFunc("PUT /_sim/records/{id}", s.adminEditRecord)
	mux.HandleFunc("DELETE /_sim/records/{id}", s.adminDeleteRecord)
	mux.HandleFunc("GET /_sim/calls", s.adminCalls)
	mux.HandleFunc("DELETE /_sim/calls", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/fail", s.adminFail)
	mux.HandleFunc("DELETE /_sim/fail", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/latency", s.adminLatency)
	mux.HandleFunc("POST /_sim/refuse-delete", s.adminRefuseDelete)
	mux.HandleFunc("DELETE /_sim/refuse-delete", s.adminAllowDelete)
	mux.HandleFunc("POST /_sim/lose-create", s.adminLoseCreate)
	mux.HandleFunc("POST /_sim/accounts", s.adminAddAccount)
	mux.HandleFunc("POST /_sim/answer-create", s.adminAnswerCreate)
	mux.HandleFunc("POST /_sim/late-create", s.adminLateCreate)
	mux.HandleFunc("POST /_sim/tidy", s.adminTidy)
	mux.HandleFunc("POST /_sim/raw-list-items", s.adminAddRawListItem)
	mux.HandleFunc("DELETE /_sim/raw-list-items", s.adminClearRawListItems)
	mux.HandleFunc("GET /_sim/call-log", func(w http.ResponseWriter, _ *http.Request) {
		adminJSON(w, http.StatusOK, s.CallLog())
	})
	return mux
}

func adminError(w http.ResponseWriter, status int, msg string) {
	adminJSON(w, status, map[string]string{"message": msg})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("malformed JSON body: " + err.Error())
	}
	return nil
}

// accountKey picks the account an admin call is about: the given key, or
// the only account when there is exactly one, so a single-account demo
// needs no key on the command line.
func (s *Server) accountKey(given string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if given != "" {
		_, ok := s.accounts[given]
		return given, ok
	}
	if len(s.accounts) == 1 {
		for k := range s.accounts {
			return k, true
		}
	}
	return "", false
}

func (s *Server) adminAccount(w http.ResponseWriter, given string) (string, bool) {
	key, ok := s.accountKey(given)
	if !ok {
		adminError(w, http.StatusNotFound, "unknown account: pass ?key= (required when there is not exactly one account)")
	}
	return key, ok
}

func (s *Server) adminListRecords(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	adminJSON(w, http.StatusOK, s.Records(key))
}

func (s *Server) adminPutRecord(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	var c scriptlock.Customer
	if err := decodeBody(r, &c); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	adminJSON(w, http.StatusCreated, s.Put(key, c))
}

// recordEdit holds the fields an out-of-band edit changes; absent fields
// are kept.
type recordEdit struct {
	Company   *string `json:"company"`
	FirstName *string `json:"firstname"`
	LastName  *string `json:"lastname"`
	Email     *string `json:"email"`
}

func (s *Server) adminEditRecord(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	var e recordEdit
	if err := decodeBody(r, &e); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	found := s.EditOutOfBand(key, id, func(c *scriptlock.Customer) {
		for _, f := range []struct {
			src *string
			dst *string
		}{{e.Company, &c.Company}, {e.FirstName, &c.FirstName}, {e.LastName, &c.LastName}, {e.Email, &c.Email}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
	})
	if !found {
		adminError(w, http.StatusNotFound, "customer not found")
		return
	}
	c, _ := s.Record(key, id)
	adminJSON(w, http.StatusOK, c)
}

func (s *Server) adminDeleteRecord(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	if !s.DeleteOutOfBand(key, r.PathValue("id")) {
		adminError(w, http.StatusNotFound, "customer not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminCalls(w http.ResponseWriter, _ *http.Request) {
	adminJSON(w, http.StatusOK, s.Calls())
}

func (s *Server) adminFail(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Method            string  `json:"method"`
		Route             string  `json:"route"`
		Count             int     `json:"count"`
		Status            int     `json:"status"`
		RetryAfterSeconds float64 `json:"retryAfterSeconds"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 0 || req.Status < 100 || req.Status > 599 {
		adminError(w, http.StatusBadRequest, "count must be positive and status between 100 and 599")
		return
	}
	s.FailNext(req.Method, req.Route, req.Count, req.Status, time.Duration(req.RetryAfterSeconds*float64(time.Second)))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminLatency(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Latency string `json:"latency"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := time.ParseDuration(req.Latency)
	if err != nil || d < 0 {
		adminError(w, http.StatusBadRequest, `latency must be a non-negative Go duration such as "250ms"`)
		return
	}
	s.SetLatency(d)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminRefuseDelete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key     string `json:"key"`
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	key, ok := s.adminAccount(w, req.Key)
	if !ok {
		return
	}
	if req.ID == "" {
		adminError(w, http.StatusBadRequest, "id is required")
		return
	}
	if req.Message == "" {
		req.Message = "customer has active licenses"
	}
	s.RefuseDelete(key, req.ID, req.Message)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminAllowDelete(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	s.AllowDelete(key, r.URL.Query().Get("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminLoseCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mode string `json:"mode"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	mode, ok := parseLoseMode(req.Mode, LoseWith500)
	if !ok {
		adminError(w, http.StatusBadRequest, `mode must be "500", "504" or "drop"`)
		return
	}
	s.LoseNextCreate(mode)
	w.WriteHeader(http.StatusNoContent)
}

// parseLoseMode reads the admin spelling of a LoseMode; "" gives def.
func parseLoseMode(v string, def LoseMode) (LoseMode, bool) {
	switch strings.ToLower(v) {
	case "":
		return def, true
	case "500":
		return LoseWith500, true
	case "504":
		return LoseWith504, true
	case "drop":
		return LoseByDroppingConnection, true
	case "409":
		return LoseWithConflict, true
	}
	return 0, false
}

func (s *Server) adminAnswerCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status int `json:"status"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Status < 200 || req.Status > 599 {
		adminError(w, http.StatusBadRequest, "status must be between 200 and 599")
		return
	}
	s.AnswerNextCreate(req.Status)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminLateCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Hide string `json:"hide"`
		Mode string `json:"mode"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	hide, err := time.ParseDuration(req.Hide)
	if err != nil || hide < 0 {
		adminError(w, http.StatusBadRequest, `hide must be a non-negative Go duration such as "1.5s"`)
		return
	}
	mode, ok := parseLoseMode(req.Mode, LoseWith504)
	if !ok {
		adminError(w, http.StatusBadRequest, `mode must be "504", "500" or "drop"`)
		return
	}
	s.CommitNextCreateLate(hide, mode)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminTidy(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tidy string `json:"tidy"`
	}
	if err := decodeBody(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch req.Tidy {
	case "", "off":
		s.SetTidy(nil)
	case "collapse-spaces":
		s.SetTidy(CollapseSpaces)
	default:
		adminError(w, http.StatusBadRequest, `tidy must be "collapse-spaces" or "off"`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminAddRawListItem(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		adminError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	s.AddRawListItem(key, raw)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminClearRawListItems(w http.ResponseWriter, r *http.Request) {
	key, ok := s.adminAccount(w, r.URL.Query().Get("key"))
	if !ok {
		return
	}
	s.ClearRawListItems(key)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminAddAccount(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if err := decodeBody(r, &req); err != nil || req.Key == "" {
		adminError(w, http.StatusBadRequest, `body must be {"key": "<api key>"}`)
		return
	}
	s.AddAccount(req.Key)
	w.WriteHeader(http.StatusNoContent)
}
