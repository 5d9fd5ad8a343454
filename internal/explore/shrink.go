package explore

// Shrink looks for the shortest history that still fails, by delta
// debugging (Zeller's ddmin): it drops ever smaller chunks of steps and
// keeps any shorter history for which fails still reports true. It stops
// after budget calls of fails and returns the shortest failing steps found
// and how many runs it took. fails is called on fresh slices only.
func Shrink(steps []Step, fails func([]Step) bool, budget int) ([]Step, int) {
	runs := 0
	try := func(cand []Step) bool {
		if runs >= budget {
			return false
		}
		runs++
		return fails(cand)
	}
	n := 2
	for len(steps) >= 2 && runs < budget {
		chunk := (len(steps) + n - 1) / n
		reduced := false
		for start := 0; start < len(steps); start += chunk {
			end := min(start+chunk, len(steps))
			cand := make([]Step, 0, len(steps)-(end-start))
			cand = append(append(cand, steps[:start]...), steps[end:]...)
			if try(cand) {
				steps, n, reduced = cand, max(n-1, 2), true
				break
			}
		}
		if !reduced {
			if n >= len(steps) {
				break
			}
			n = min(2*n, len(steps))
		}
	}
	return steps, runs
}
