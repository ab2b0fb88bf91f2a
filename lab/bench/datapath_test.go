package bench

import "testing"

func TestIperfSeconds(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		cases, set, want int
	}{
		{8, 0, 10},  // L2 only: 24 runs fit 5 min at 10 s
		{12, 0, 6},  // with routed: 36 runs → 300/36 − 1.6 = 6.7
		{500, 0, 2}, // never below 2 s
		{12, 4, 4},  // set explicitly
	} {
		cfg.IperfSeconds = tc.set
		if got, why := iperfSeconds(cfg, tc.cases); got != tc.want || why == "" {
			t.Errorf("%d cases, set %d: %d s (%q), want %d", tc.cases, tc.set, got, why, tc.want)
		}
	}
}
