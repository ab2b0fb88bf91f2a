package bench

import "testing"

func TestIperfSeconds(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		cases, set, want int
	}{
		{4, 0, 10},  // 12 runs fit 5 min at 10 s
		{10, 0, 8},  // L2 only (5 paths): 30 runs → 300/30 − 1.6 = 8.4
		{14, 0, 5},  // with routed (7 paths): 42 runs → 300/42 − 1.6 = 5.5
		{500, 0, 2}, // never below 2 s
		{12, 4, 4},  // set explicitly
	} {
		cfg.IperfSeconds = tc.set
		if got, why := iperfSeconds(cfg, tc.cases); got != tc.want || why == "" {
			t.Errorf("%d cases, set %d: %d s (%q), want %d", tc.cases, tc.set, got, why, tc.want)
		}
	}
}
