package main

// The plot of docs/benchmarks.md: calls and transitions against replica count.

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one line of the plot.
type Series struct {
	Name   string
	Points plotter.XYs
}

// ScalingSeries turns the runs into the plot's lines, ordered by replica count:
// transitions, Lambda invocations, every API call, and the EC2 and ELB calls whose
// count the design keeps flat or batched.
func ScalingSeries(runs []RunFigure) []Series {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b RunFigure) int { return a.Replicas - b.Replicas })
	lines := []struct {
		name string
		y    func(RunFigure) int
	}{
		{"state transitions", func(r RunFigure) int { return r.Transitions }},
		{"Lambda invocations", func(r RunFigure) int { return r.LambdaInvocations }},
		{"API calls (all, Invoke included)", func(r RunFigure) int { return total(r.Calls) }},
		{"ec2:DescribeInstances", func(r RunFigure) int { return r.Calls["ec2:DescribeInstances"] }},
		{"ec2:RunInstances", func(r RunFigure) int { return r.Calls["ec2:RunInstances"] }},
		{"elasticloadbalancing:RegisterTargets", func(r RunFigure) int { return r.Calls["elasticloadbalancing:RegisterTargets"] }},
	}
	var out []Series
	for _, l := range lines {
		s := Series{Name: l.name}
		for _, r := range sorted {
			s.Points = append(s.Points, plotter.XY{X: float64(r.Replicas), Y: float64(l.y(r))})
		}
		out = append(out, s)
	}
	return out
}

// WritePlot draws the series against replica count (log scale) into a PNG.
func WritePlot(path string, series []Series) error {
	p := plot.New()
	p.Title.Text = "amifleet in the local cloud: calls and transitions per run"
	p.X.Label.Text = "replicas (log scale)"
	p.Y.Label.Text = "count per run"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = replicaTicks(series)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	// Room above the highest line for the legend, and counts from zero.
	p.Y.Min = 0
	for _, s := range series {
		for _, pt := range s.Points {
			p.Y.Max = max(p.Y.Max, pt.Y*1.8)
		}
	}
	for i, s := range series {
		line, points, err := plotter.NewLinePoints(s.Points)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Name, err)
		}
		c := plotutil.Color(i)
		line.Color, points.Color = c, c
		line.Dashes = plotutil.Dashes(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
	}
	p.BackgroundColor = color.White
	return p.Save(8*vg.Inch, 5.5*vg.Inch, path)
}

// replicaTicks puts a labelled tick at every measured replica count.
func replicaTicks(series []Series) plot.Ticker {
	var ticks plot.ConstantTicks
	if len(series) > 0 {
		for _, pt := range series[0].Points {
			ticks = append(ticks, plot.Tick{Value: pt.X, Label: fmt.Sprintf("%g", pt.X)})
		}
	}
	return ticks
}
