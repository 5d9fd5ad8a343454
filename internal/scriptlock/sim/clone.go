package sim

import (
	"maps"
	"time"
)

// Clone returns a new Server holding a copy of s's accounts (the same keys),
// records and id counters, as a staging instance restored from a backup of
// production: the same ids with the same data, yet another ScriptLock.
// Faults, latency, refused deletes, raw list items and calls are not
// copied; the options that shape answers (string ids, ids per account, the
// clock, tidy) are.
func (s *Server) Clone() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := New()
	c.nextID, c.stringIDs, c.idsPerAccount, c.now, c.tidy = s.nextID, s.stringIDs, s.idsPerAccount, s.now, s.tidy
	for key, a := range s.accounts {
		c.accounts[key] = &account{
			records: maps.Clone(a.records),
			refused: map[string]string{},
			hidden:  map[string]time.Time{},
			nextID:  a.nextID,
		}
	}
	return c
}
