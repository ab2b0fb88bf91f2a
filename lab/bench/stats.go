package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary is a sample's size and order statistics. Percentiles interpolate linearly between
// the two closest ranks (Hyndman–Fan type 7, the default of numpy and R): with n values
// sorted, the p-th percentile sits at rank p/100·(n−1). NaN values are left out.
type Summary struct {
	N                                     int
	Min, P10, Median, P90, P99, Max, Mean float64
}

// Summarize computes the Summary of xs (which it does not modify). An empty sample gives a
// Summary with N = 0 and NaN everywhere else.
func Summarize(xs []float64) Summary {
	s := sortedClean(xs)
	if len(s) == 0 {
		nan := math.NaN()
		return Summary{Min: nan, P10: nan, Median: nan, P90: nan, P99: nan, Max: nan, Mean: nan}
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Summary{
		N: len(s), Min: s[0], Max: s[len(s)-1], Mean: sum / float64(len(s)),
		P10: percentileSorted(s, 10), Median: percentileSorted(s, 50),
		P90: percentileSorted(s, 90), P99: percentileSorted(s, 99),
	}
}

// Percentile returns the p-th percentile (0 ≤ p ≤ 100, clamped) of xs, NaN values left out;
// NaN for an empty sample.
func Percentile(xs []float64, p float64) float64 {
	return percentileSorted(sortedClean(xs), p)
}

// Median is the 50th percentile of xs.
func Median(xs []float64) float64 { return Percentile(xs, 50) }

func sortedClean(xs []float64) []float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return s
}

func percentileSorted(s []float64, p float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	p = min(max(p, 0), 100)
	r := p / 100 * float64(len(s)-1)
	lo, hi := int(math.Floor(r)), int(math.Ceil(r))
	return s[lo] + (s[hi]-s[lo])*(r-float64(lo))
}

// Ratios returns a[i]/b[i] for each i of the shorter slice: paired ratios of measurements
// taken in the same trial. A pair with a NaN or a zero divisor gives NaN.
func Ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, n)
	for i := range n {
		if b[i] == 0 || math.IsNaN(a[i]) || math.IsNaN(b[i]) {
			out[i] = math.NaN()
			continue
		}
		out[i] = a[i] / b[i]
	}
	return out
}

// Millis converts durations to milliseconds.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// milestone is one step of a timed sequence with its durations over the trials.
type milestone struct {
	name string
	ds   []time.Duration
}

// milestoneTable has a row per milestone: median, spread and number of trials; header
// names the first column (what the durations count from).
func milestoneTable(header string, ms []milestone) Table {
	t := Table{Header: []string{header, "median ms", "min–max ms", "trials"}}
	for _, m := range ms {
		sm := Summarize(Millis(m.ds))
		t.AddRow(m.name, num(sm.Median), spread(sm), fmt.Sprint(sm.N))
	}
	return t
}
