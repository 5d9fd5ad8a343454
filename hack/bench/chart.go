package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// line is one curve of the chart.
type line struct {
	label   string
	color   color.RGBA
	samples []sample
}

var lineColors = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // orange
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
}

// drawChart writes a PNG of Ready Customers over time: one line per mode,
// axes with ticks, grid and a legend. Only the standard image packages and
// x/image's built-in bitmap font are used.
func drawChart(path, title string, n int, lines []line) error {
	const (
		w, h                     = 960, 540
		left, right, top, bottom = 80, 30, 50, 60
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.White}, image.Point{}, draw.Src)
	black := color.RGBA{A: 0xff}
	grid := color.RGBA{R: 0xe0, G: 0xe0, B: 0xe0, A: 0xff}

	var tMax time.Duration
	for _, l := range lines {
		for _, s := range l.samples {
			tMax = max(tMax, s.t)
		}
	}
	xMax := niceCeil(max(tMax.Seconds(), 1))
	yMax := niceCeil(float64(n))
	pw, ph := w-left-right, h-top-bottom
	px := func(sec float64) int { return left + int(math.Round(sec/xMax*float64(pw))) }
	py := func(v float64) int { return top + ph - int(math.Round(v/yMax*float64(ph))) }

	// Grid, ticks and tick labels.
	const ticks = 5
	for i := 0; i <= ticks; i++ {
		xv := xMax * float64(i) / ticks
		x := px(xv)
		vline(img, x, top, top+ph, grid)
		vline(img, x, top+ph, top+ph+5, black)
		label := trimFloat(xv)
		text(img, x-len(label)*7/2, top+ph+20, label, black)

		yv := yMax * float64(i) / ticks
		y := py(yv)
		hline(img, left, left+pw, y, grid)
		hline(img, left-5, left, y, black)
		label = trimFloat(yv)
		text(img, left-8-len(label)*7, y+4, label, black)
	}
	// Axes.
	hline(img, left, left+pw, top+ph, black)
	vline(img, left, top, top+ph, black)
	text(img, left+pw/2-len("seconds since the first create")*7/2, h-15, "seconds since the first create", black)
	text(img, 10, top-12, "Ready Customers", black)
	text(img, left+pw/2-len(title)*7/2, 22, title, black)
	// A dashed line at N.
	for x := left; x < left+pw; x += 8 {
		hline(img, x, min(x+4, left+pw), py(float64(n)), color.RGBA{R: 0x90, G: 0x90, B: 0x90, A: 0xff})
	}

	for _, l := range lines {
		for i := 1; i < len(l.samples); i++ {
			a, b := l.samples[i-1], l.samples[i]
			thickLine(img, px(a.t.Seconds()), py(float64(a.ready)), px(b.t.Seconds()), py(float64(b.ready)), l.color)
		}
	}
	// Legend, bottom right, inside the plot.
	lx, ly := left+pw-230, top+ph-20-22*len(lines)
	draw.Draw(img, image.Rect(lx-10, ly-10, left+pw-10, top+ph-10), &image.Uniform{color.White}, image.Point{}, draw.Src)
	for i, l := range lines {
		y := ly + 22*i
		draw.Draw(img, image.Rect(lx, y, lx+24, y+12), &image.Uniform{l.color}, image.Point{}, draw.Src)
		text(img, lx+32, y+11, l.label, black)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// thickLine draws a 3-pixel-wide segment (Bresenham with a square pen).
func thickLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		for ox := -1; ox <= 1; ox++ {
			for oy := -1; oy <= 1; oy++ {
				img.SetRGBA(x0+ox, y0+oy, c)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
