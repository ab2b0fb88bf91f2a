package fabric

import "testing"

// TestDatapath: what each datapath needs done, and the parse of its name.
func TestDatapath(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		err                  bool
		txCsumOff, arpIgnore bool
	}{
		{in: "system"},
		{in: "netdev", txCsumOff: true, arpIgnore: true},
		{in: "auto", err: true},
		{in: "", err: true},
		{in: "kernel", err: true},
		{in: "Netdev", err: true},
	} {
		d, err := ParseDatapath(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseDatapath(%q): %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if d.String() != tc.in || d.VethTxChecksumOff() != tc.txCsumOff || d.VethARPIgnore() != tc.arpIgnore {
			t.Errorf("%s: TX checksum off %v, arp_ignore %v; want %v %v", d,
				d.VethTxChecksumOff(), d.VethARPIgnore(), tc.txCsumOff, tc.arpIgnore)
		}
	}
}

// TestPlanCarriesDatapath: the bridge Plan asks for has the host's datapath.
func TestPlanCarriesDatapath(t *testing.T) {
	for _, dp := range []Datapath{DatapathSystem, DatapathNetdev} {
		f := syntheticFacts(1)
		f.Datapath = dp
		d, err := Plan(f)
		if err != nil {
			t.Fatal(err)
		}
		if d.Datapath != dp {
			t.Errorf("Plan with %s: desired datapath %q", dp, d.Datapath)
		}
	}
	f := syntheticFacts(1)
	f.Datapath = ""
	if _, err := Plan(f); err == nil {
		t.Error("Plan without a datapath succeeded")
	}
}
