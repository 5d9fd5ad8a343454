package scriptlock

import "time"

// Test hooks, compiled only into this package's tests.

// SetClockForTest makes the gates of c's account and host read the time
// from now. Call it before any call of the account.
func SetClockForTest(c *Client, now func() time.Time) { c.gate.now, c.host.now = now, now }

// LimiterTokensForTest returns the tokens left in the rate limiter of c's
// account; below zero, a caller is waiting.
func LimiterTokensForTest(c *Client) float64 { return c.gate.limiter.Tokens() }

// ListLimitForTest returns the largest listing body c reads.
func ListLimitForTest(c *Client) int64 { return c.listLimit }
