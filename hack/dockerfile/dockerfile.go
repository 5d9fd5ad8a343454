// Package dockerfile reads the operator's Dockerfile and .dockerignore the
// way `docker build` does, for the subset of their syntax this repository
// uses, and copies a builder stage's COPY sources out of the build context.
// The e2e image writer (hack/e2e/cmd/imagetar) and test/manifests (which
// runs the builder stage's `go build` without Docker) share it, so that
// both read the Dockerfile alike.
package dockerfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Instruction is one instruction: its upper-cased name and its arguments.
type Instruction struct {
	Cmd, Args string
}

// Stages returns the instructions of text by stage (each FROM opens one),
// continuation lines joined and comments dropped.
func Stages(text string) [][]Instruction {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var stages [][]Instruction
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" || len(stages) == 0 {
			stages = append(stages, nil)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], Instruction{Cmd: cmd, Args: strings.TrimSpace(args)})
	}
	return stages
}

// Ignore reads the patterns of the .dockerignore in the build context dir
// (none if there is none).
func Ignore(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	return patterns, nil
}

// Ignored reports whether rel (slash-separated, relative to the build
// context) is left out of the context by patterns: plain globs, "!"
// exceptions, a trailing "/" and a leading "**/". A pattern that matches a
// directory matches everything under it; the last matching pattern wins.
func Ignored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(p, "!"), "/")
		for i := 1; i <= len(parts); i++ {
			var ok bool
			if base, anyDir := strings.CutPrefix(p, "**/"); anyDir {
				ok, _ = path.Match(base, parts[i-1])
			} else {
				ok, _ = path.Match(p, strings.Join(parts[:i], "/"))
			}
			if ok {
				out = !neg
				break
			}
		}
	}
	return out
}

// Copy carries out a builder stage's `COPY SRC... DST` (args) from the
// build context dir into work, leaving out what ignore leaves out of the
// context. Flags (--from, --chown, ...) are not supported.
func Copy(dir string, ignore []string, args, work string) error {
	if strings.HasPrefix(args, "--") {
		return fmt.Errorf("COPY %s: flags are not supported", args)
	}
	f := strings.Fields(args)
	if len(f) < 2 {
		return fmt.Errorf("COPY %s: want a source and a destination", args)
	}
	srcs, dstArg := f[:len(f)-1], f[len(f)-1]
	for _, src := range srcs {
		dst := filepath.Join(work, dstArg)
		if len(srcs) > 1 || strings.HasSuffix(dstArg, "/") && !strings.HasSuffix(src, "/") {
			dst = filepath.Join(dst, filepath.Base(src))
		}
		if err := copyContext(dir, strings.TrimSuffix(src, "/"), dst, ignore); err != nil {
			return fmt.Errorf("COPY %s: %w", src, err)
		}
	}
	return nil
}

// copyContext copies src (relative to the context) to dst. It reads
// through an os.Root, so that nothing outside the context is read.
func copyContext(dir, src, dst string, ignore []string) error {
	ctxRoot, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer ctxRoot.Close()
	return fs.WalkDir(ctxRoot.FS(), src, func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if Ignored(ignore, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		inner, err := filepath.Rel(src, rel)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, inner)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		b, err := ctxRoot.ReadFile(rel)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
}
