// Package version holds the operator's version, the one variable the build
// stamps into every binary: the manager's --version and start-up log line,
// the User-Agent it sends to ScriptLock, and `kubectl scriptlock version`.
package version

// Version is set at build time (Makefile LDFLAGS, Dockerfile) with
// -ldflags "-X github.com/scriptlock/customer-operator/internal/version.Version=v1.2.3".
var Version = "dev"
