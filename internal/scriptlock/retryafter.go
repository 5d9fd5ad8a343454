package scriptlock

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps what a server may ask for: a buggy or hostile
// Retry-After of days would otherwise freeze an account until a restart.
const maxRetryAfter = time.Hour

// parseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date (RFC 9110 section 10.2.3). A date in the past means "now" and
// yields (0, true). Anything unparseable yields (0, false).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0, false
			}
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(maxRetryAfter/time.Second) {
			// Only overflow fails here: all digits were checked above.
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxRetryAfter:
		return maxRetryAfter, true
	}
	// Round up to whole seconds: HTTP dates carry no fractions, and waking a
	// fraction early would only earn another 429.
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d, true
}
