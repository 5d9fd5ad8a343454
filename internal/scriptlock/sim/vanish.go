package sim

// Reads that do not see records which are there: a lagging replica, a
// maintenance window, a failover to an empty replica. Writes still reach
// the records, so a create with a used email answers 409 and a PUT or
// DELETE acts as usual.

// VanishNext makes the next n reads of any account (a listing, a GET by
// id) answer as if the account held no records: 204 for a listing, 404 for
// a GET.
func (s *Server) VanishNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vanishReads += max(0, n)
}

// SetVanished makes every read answer as if the account held no records
// until it is called with false: a failover to an empty replica, for all
// the accounts of the server at once. ClearFaults lifts it too.
func (s *Server) SetVanished(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vanished = on
}

// vanishLocked reports whether this read is to see no records, and counts
// it against VanishNext.
func (s *Server) vanishLocked() bool {
	if s.vanished {
		return true
	}
	if s.vanishReads > 0 {
		s.vanishReads--
		return true
	}
	return false
}
