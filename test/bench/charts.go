package main

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The charts are PNGs of 960 × 540 pixels (10 × 5.625 inches at gonum's
// 96 dpi), drawn with gonum.org/v1/plot. Each axis spans the data it
// shows, so a run that took 219 s ends near 219 s.

const chartW, chartH = 10 * vg.Inch, 5.625 * vg.Inch

// modeColors are the modes' colors, the same in every chart; the report
// names them in the captions.
var modeColors = map[string]struct {
	name string
	c    color.RGBA
}{
	"list":       {"blue", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
	"per-object": {"orange", color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}},
}

// otherColor is the color of a mode this file does not know.
var otherColor = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff} // green

var gray = color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}

var dashed = []vg.Length{vg.Points(6), vg.Points(4)}

// colorOf is a mode's color and its name.
func colorOf(mode string) (string, color.RGBA) {
	if c, ok := modeColors[mode]; ok {
		return c.name, c.c
	}
	return "green", otherColor
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a polyline through xys with a legend entry (none when
// label is empty).
func addLine(p *plot.Plot, label string, xys plotter.XYs, c color.Color, dash []vg.Length, width vg.Length, points bool) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color, l.Dashes, l.Width = c, dash, width
	p.Add(l)
	var thumb plot.Thumbnailer = l
	if points {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		s.Color, s.Shape, s.Radius = c, draw.CircleGlyph{}, vg.Points(3)
		p.Add(s)
		thumb = lineAndPoints{l, s}
	}
	if label != "" {
		p.Legend.Add(label, thumb)
	}
	return nil
}

// lineAndPoints draws both in the legend.
type lineAndPoints struct {
	l *plotter.Line
	s *plotter.Scatter
}

func (t lineAndPoints) Thumbnail(c *draw.Canvas) { t.l.Thumbnail(c); t.s.Thumbnail(c) }

// readyCurve is one mode's Ready Customers over time.
type readyCurve struct {
	mode    string
	samples []sample
	goal    float64 // seconds; 0 for none
}

// drawReadyChart draws Ready Customers over time, one line per mode, with
// a dashed line at N and, per mode, a dashed vertical line at its
// throughput goal.
func drawReadyChart(path, title string, n int, curves []readyCurve) error {
	p := newPlot(title, "seconds since the first create", "Ready Customers")
	p.Y.Min = 0
	var tMax float64
	for _, cu := range curves {
		xys := make(plotter.XYs, len(cu.samples))
		for i, s := range cu.samples {
			xys[i] = plotter.XY{X: s.t.Seconds(), Y: float64(s.ready)}
			tMax = max(tMax, s.t.Seconds())
		}
		if len(xys) == 0 {
			continue
		}
		_, c := colorOf(cu.mode)
		if err := addLine(p, "--drift-detection="+cu.mode, xys, c, nil, vg.Points(2), false); err != nil {
			return err
		}
	}
	for _, cu := range curves {
		if cu.goal <= 0 {
			continue
		}
		_, c := colorOf(cu.mode)
		if err := addLine(p, fmt.Sprintf("goal, %s: 1.2 × max(N/qps, N/ceiling) = %.0f s", cu.mode, cu.goal),
			plotter.XYs{{X: cu.goal, Y: 0}, {X: cu.goal, Y: float64(n)}}, c, dashed, vg.Points(1), false); err != nil {
			return err
		}
		tMax = max(tMax, cu.goal)
	}
	if err := addLine(p, "", plotter.XYs{{X: 0, Y: float64(n)}, {X: tMax, Y: float64(n)}}, gray, dashed, vg.Points(1), false); err != nil {
		return err
	}
	p.Legend.Left, p.Legend.Top = false, false // bottom right: the curves rise from the bottom left
	return p.Save(chartW, chartH, path)
}

// drawMemoryChart draws the manager's peak RSS and live heap against N,
// one pair of lines per mode, from every run without a seeded account,
// and the Deployment's memory limit of the largest run.
func drawMemoryChart(path string, runs []runRecord) (drawn bool, err error) {
	p := newPlot("Manager memory against the number of Customers", "Customers (N)", "MiB")
	p.X.Min, p.Y.Min = 0, 0
	var maxN, maxY float64
	var limit int64
	for _, r := range runs {
		// The limit of the largest run: the one the chart's right edge is.
		if r.SeedRecords == 0 && float64(r.N) >= maxN {
			maxN, limit = float64(r.N), r.DeploymentMemoryLimit
		}
	}
	for _, mode := range modesIn(runs) {
		var rss, heap plotter.XYs
		for _, r := range runs {
			if r.SeedRecords != 0 {
				continue
			}
			for _, m := range r.Modes {
				if m.Mode != mode {
					continue
				}
				x := float64(r.N)
				if m.PeakRSSBytes > 0 {
					rss = append(rss, plotter.XY{X: x, Y: float64(m.PeakRSSBytes) / (1 << 20)})
					maxY = max(maxY, float64(m.PeakRSSBytes)/(1<<20))
				}
				if m.LiveHeapBytes > 0 {
					heap = append(heap, plotter.XY{X: x, Y: float64(m.LiveHeapBytes) / (1 << 20)})
				}
			}
		}
		_, c := colorOf(mode)
		if len(rss) > 0 {
			drawn = true
			if err := addLine(p, "peak RSS (VmHWM), "+mode, rss, c, nil, vg.Points(2), true); err != nil {
				return false, err
			}
		}
		if len(heap) > 0 {
			if err := addLine(p, "live heap after the creates (heap profile), "+mode, heap, c, dashed, vg.Points(2), true); err != nil {
				return false, err
			}
		}
	}
	if !drawn {
		return false, nil
	}
	// Room above the highest line for the legend (top left).
	p.Y.Max = 1.35 * max(maxY, float64(limit)/(1<<20))
	if limit > 0 {
		if err := addLine(p, fmt.Sprintf("memory limit of the Deployment (config/manager): %.0f MiB", float64(limit)/(1<<20)),
			plotter.XYs{{X: 0, Y: float64(limit) / (1 << 20)}, {X: maxN, Y: float64(limit) / (1 << 20)}}, gray, dashed, vg.Points(1), false); err != nil {
			return false, err
		}
	}
	return true, p.Save(chartW, chartH, path)
}

// drawCallsChart draws the ScriptLock calls per resync period of the idle
// phase against N, one line per mode, on a log scale (list mode makes one
// call per account, per-object one per Customer).
func drawCallsChart(path string, runs []runRecord) (drawn bool, err error) {
	p := newPlot("ScriptLock calls per resync period when idle", "Customers (N)", "calls per resync period (log scale)")
	p.X.Min = 0
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lo, hi := 0.0, 0.0
	for _, mode := range modesIn(runs) {
		var xys plotter.XYs
		for _, r := range runs {
			if r.SeedRecords != 0 {
				continue
			}
			for _, m := range r.Modes {
				if v := m.IdleCallsPerPeriod; m.Mode == mode && v > 0 {
					xys = append(xys, plotter.XY{X: float64(r.N), Y: v})
					if lo == 0 || v < lo {
						lo = v
					}
					hi = max(hi, v)
				}
			}
		}
		if len(xys) == 0 {
			continue
		}
		drawn = true
		_, c := colorOf(mode)
		if err := addLine(p, "--drift-detection="+mode, xys, c, nil, vg.Points(2), true); err != nil {
			return false, err
		}
	}
	if !drawn {
		return false, nil
	}
	// A decade of room above for the legend (top left), half one below.
	p.Y.Min, p.Y.Max = lo/2, hi*10
	return true, p.Save(chartW, chartH, path)
}

// modesIn lists the modes of runs: list and per-object first, then any
// other, sorted.
func modesIn(runs []runRecord) []string {
	seen := map[string]bool{}
	for _, r := range runs {
		for _, m := range r.Modes {
			seen[m.Mode] = true
		}
	}
	var out, rest []string
	for _, m := range []string{"list", "per-object"} {
		if seen[m] {
			out = append(out, m)
			delete(seen, m)
		}
	}
	for m := range seen {
		rest = append(rest, m)
	}
	sort.Strings(rest)
	return append(out, rest...)
}
