package bench

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"one value", []float64{7}, Summary{N: 1, Min: 7, P10: 7, Median: 7, P90: 7, P99: 7, Max: 7, Mean: 7}},
		{"odd count, unsorted", []float64{3, 1, 2}, Summary{N: 3, Min: 1, P10: 1.2, Median: 2, P90: 2.8, P99: 2.98, Max: 3, Mean: 2}},
		{"even count interpolates the median", []float64{4, 1, 3, 2}, Summary{N: 4, Min: 1, P10: 1.3, Median: 2.5, P90: 3.7, P99: 3.97, Max: 4, Mean: 2.5}},
		{"NaN left out", []float64{math.NaN(), 5, 1}, Summary{N: 2, Min: 1, P10: 1.4, Median: 3, P90: 4.6, P99: 4.96, Max: 5, Mean: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.in)
			if got.N != tc.want.N {
				t.Fatalf("N = %d, want %d", got.N, tc.want.N)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"min", got.Min, tc.want.Min}, {"p10", got.P10, tc.want.P10}, {"median", got.Median, tc.want.Median},
				{"p90", got.P90, tc.want.P90}, {"p99", got.P99, tc.want.P99}, {"max", got.Max, tc.want.Max}, {"mean", got.Mean, tc.want.Mean},
			} {
				if math.Abs(f.got-f.want) > 1e-9 {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestSummarizeEmpty(t *testing.T) {
	s := Summarize(nil)
	if s.N != 0 || !math.IsNaN(s.Median) || !math.IsNaN(s.Max) {
		t.Fatalf("empty sample: %+v", s)
	}
	if !math.IsNaN(Percentile([]float64{math.NaN()}, 50)) {
		t.Fatal("a sample of NaN has no percentile")
	}
}

func TestPercentileDoesNotModifyInput(t *testing.T) {
	in := []float64{3, 1, 2}
	if got := Percentile(in, 100); got != 3 {
		t.Fatalf("p100 = %v", got)
	}
	if got := Percentile(in, -5); got != 1 {
		t.Fatalf("p<0 clamps to the minimum, got %v", got)
	}
	if in[0] != 3 || in[1] != 1 {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestPercentileOf1000(t *testing.T) {
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = float64(1000 - i) // 1000 … 1
	}
	// rank 0.99·999 = 989.01 → 990 + 0.01
	if got := Percentile(xs, 99); math.Abs(got-990.01) > 1e-9 {
		t.Fatalf("p99 = %v", got)
	}
	if got := Median(xs); got != 500.5 {
		t.Fatalf("median = %v", got)
	}
}

func TestRatios(t *testing.T) {
	got := Ratios([]float64{2, 3, math.NaN(), 4}, []float64{1, 0, 1})
	if len(got) != 3 || got[0] != 2 || !math.IsNaN(got[1]) || !math.IsNaN(got[2]) {
		t.Fatalf("Ratios = %v", got)
	}
}

func TestMillis(t *testing.T) {
	got := Millis([]time.Duration{1500 * time.Microsecond, 2 * time.Second})
	if got[0] != 1.5 || got[1] != 2000 {
		t.Fatalf("Millis = %v", got)
	}
}
