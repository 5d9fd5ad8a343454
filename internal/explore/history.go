package explore

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Step is one thing that happens in a history: a user action, a
// perturbation, or a ScriptLock fault. Op names it; Args are its operands
// in the text form "op arg arg".
type Step struct {
	Op   string
	Args []string
}

func (s Step) String() string {
	return strings.Join(append([]string{s.Op}, s.Args...), " ")
}

// Arg returns the i-th operand, or "" when there is none.
func (s Step) Arg(i int) string {
	if i < len(s.Args) {
		return s.Args[i]
	}
	return ""
}

// History is what one run does, in order. Seed is the seed it was
// generated from (0 for a history written by hand or shrunk from one: the
// steps alone replay it).
type History struct {
	Seed  uint64
	Steps []Step
}

// Format writes h as text: a "seed N" line, then one step per line. Parse
// reads it back; lines starting with # are comments.
func (h History) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\n", h.Seed)
	for _, s := range h.Steps {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Parse reads the text form of a history (see Format), checking every op
// against the known ones.
func Parse(text string) (History, error) {
	var h History
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "seed" && len(f) == 2 {
			seed, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return History{}, fmt.Errorf("line %d: %w", n, err)
			}
			h.Seed = seed
			continue
		}
		if _, ok := ops[f[0]]; !ok {
			return History{}, fmt.Errorf("line %d: unknown step %q", n, f[0])
		}
		s := Step{Op: f[0]}
		if len(f) > 1 {
			s.Args = f[1:]
		}
		h.Steps = append(h.Steps, s)
	}
	return h, sc.Err()
}
