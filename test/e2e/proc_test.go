//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// containerProcs returns the host pids of the processes of the container
// whose CRI id is id: those whose cgroup path ends in that id (the
// kubelet's cgroupfs layout, .../pod<uid>/<container id>).
func containerProcs(id string) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup"))
		if err != nil {
			continue // gone meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(line, "/"+id) {
				var pid int
				if _, err := fmt.Sscanf(filepath.Base(d), "%d", &pid); err == nil {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process on this host is in the cgroup of container %s", id)
	}
	return pids, nil
}

// procFacts is what the kernel says about one process, not what its Pod
// spec asks for.
type procFacts struct {
	exe        string
	uids, gids []string // real, effective, saved, filesystem
	groups     string
	caps       map[string]string // CapInh, CapPrm, CapEff, CapBnd, CapAmb
	noNewPrivs string
	seccomp    string // 0 off, 1 strict, 2 filter
	rootMount  string // the options of the mount at / in its mount namespace
	// rootWrite is the error of creating a file at the root of its file
	// system, through its own mount namespace (/proc/PID/root).
	rootWrite error
}

func readProc(pid int) (procFacts, error) {
	f := procFacts{caps: map[string]string{}}
	dir := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return f, err
	}
	f.exe = exe
	status, err := os.Open(dir + "/status")
	if err != nil {
		return f, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		switch {
		case k == "Uid":
			f.uids = strings.Fields(v)
		case k == "Gid":
			f.gids = strings.Fields(v)
		case k == "Groups":
			f.groups = v
		case strings.HasPrefix(k, "Cap"):
			f.caps[k] = v
		case k == "NoNewPrivs":
			f.noNewPrivs = v
		case k == "Seccomp":
			f.seccomp = v
		}
	}
	if err := sc.Err(); err != nil {
		return f, err
	}
	mi, err := os.ReadFile(dir + "/mountinfo")
	if err != nil {
		return f, err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(line)
		if len(fields) > 5 && fields[4] == "/" {
			f.rootMount = fields[5] // the last mount at / wins (it is on top)
		}
	}
	probe := filepath.Join(dir, "root", "scriptlock-e2e-write-probe")
	if err := os.WriteFile(probe, []byte("x"), 0o600); err == nil {
		_ = os.Remove(probe)
		f.rootWrite = nil
	} else {
		f.rootWrite = err
	}
	return f, nil
}

// check lists how f differs from a process that runs as uid and gid, with
// no capability, no way to gain privileges, a seccomp filter and a
// read-only root.
func (f procFacts) check(uid, gid string) []string {
	var bad []string
	for i, u := range f.uids {
		if u != uid {
			bad = append(bad, fmt.Sprintf("uid #%d is %s, want %s (Uid: %v)", i, u, uid, f.uids))
			break
		}
	}
	for i, g := range f.gids {
		if g != gid {
			bad = append(bad, fmt.Sprintf("gid #%d is %s, want %s (Gid: %v)", i, g, gid, f.gids))
			break
		}
	}
	if len(f.uids) != 4 || len(f.gids) != 4 {
		bad = append(bad, fmt.Sprintf("unreadable Uid/Gid: %v %v", f.uids, f.gids))
	}
	for _, g := range strings.Fields(f.groups) {
		if g == "0" {
			bad = append(bad, "in supplementary group 0 (Groups: "+f.groups+")")
		}
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v, ok := f.caps[k]; !ok || strings.Trim(v, "0") != "" {
			bad = append(bad, fmt.Sprintf("%s is %q, want no capability", k, v))
		}
	}
	if f.noNewPrivs != "1" {
		bad = append(bad, "NoNewPrivs is "+f.noNewPrivs+", want 1 (allowPrivilegeEscalation: false)")
	}
	if f.seccomp != "2" {
		bad = append(bad, "Seccomp is "+f.seccomp+", want 2 (a filter: RuntimeDefault)")
	}
	if !hasOption(f.rootMount, "ro") {
		bad = append(bad, "the root mount's options are "+f.rootMount+", want ro")
	}
	if !errors.Is(f.rootWrite, syscall.EROFS) {
		bad = append(bad, fmt.Sprintf("writing a file at its root: %v, want %v", f.rootWrite, syscall.EROFS))
	}
	return bad
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}
