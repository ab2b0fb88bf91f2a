package dockerplugin

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const (
	netID = "1111111111111111111111111111111111111111111111111111111111111111"
	epID  = "2222222222222222222222222222222222222222222222222222222222222222"
)

func TestDecodeCreateNetwork(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       createNetwork
		err        string
	}{
		{"pool", `{"NetworkID":"` + netID + `","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"ovsfabric","Pool":"10.70.0.0/16","Gateway":"10.70.0.1/16"}],"IPv6Data":[]}`,
			createNetwork{ID: netID, AddressSpace: "ovsfabric", Pool: netip.MustParsePrefix("10.70.0.0/16")}, ""},
		{"named internal", `{"NetworkID":"` + netID + `","Options":{"com.docker.network.internal":true,"com.docker.network.generic":{"ovsfabric.network":"blue"}},"IPv4Data":[{"AddressSpace":"ovsfabric","Pool":"10.70.0.0/16"}]}`,
			createNetwork{ID: netID, AddressSpace: "ovsfabric", Pool: netip.MustParsePrefix("10.70.0.0/16"), Name: "blue", Internal: true}, ""},
		{"unknown option", `{"NetworkID":"` + netID + `","Options":{"com.docker.network.generic":{"mtu":"9000"}},"IPv4Data":[{"Pool":"10.70.0.0/16"}]}`, createNetwork{}, "unknown option -o mtu"},
		{"bad id", `{"NetworkID":"xyz","IPv4Data":[{"Pool":"10.70.0.0/16"}]}`, createNetwork{}, "not a Docker ID"},
		{"ipv6", `{"NetworkID":"` + netID + `","IPv4Data":[{"Pool":"10.70.0.0/16"}],"IPv6Data":[{"Pool":"fd00::/64"}]}`, createNetwork{}, "IPv4 only"},
		{"two pools", `{"NetworkID":"` + netID + `","IPv4Data":[{"Pool":"10.70.0.0/16"},{"Pool":"10.71.0.0/16"}]}`, createNetwork{}, "exactly one IPv4 pool"},
		{"host bits", `{"NetworkID":"` + netID + `","IPv4Data":[{"Pool":"10.70.1.0/16"}]}`, createNetwork{}, "did you mean 10.70.0.0/16"},
		{"trailing", `{"NetworkID":"` + netID + `","IPv4Data":[{"Pool":"10.70.0.0/16"}]} {}`, createNetwork{}, "trailing data"},
		{"wrong type", `{"NetworkID":7}`, createNetwork{}, "bad request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCreateNetwork([]byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errBadRequest) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeIPAM(t *testing.T) {
	p, err := decodeRequestPool([]byte(`{"AddressSpace":"ovsfabric","Pool":"10.70.0.0/16","SubPool":"","Options":{},"V6":false}`))
	if err != nil || p.Pool != netip.MustParsePrefix("10.70.0.0/16") {
		t.Fatalf("pool: %+v %v", p, err)
	}
	for body, want := range map[string]string{
		`{"Pool":"10.70.0.0/16","SubPool":"10.70.1.0/24"}`: "--ip-range",
		`{"Pool":"10.70.0.0/16","V6":true}`:                "IPv4 only",
		`{}`:                                               "give --subnet",
		`{"Pool":"10.70.0.0/16","Options":{"foo":"bar"}}`:   "unknown --ipam-opt foo",
		`{"Pool":"fd00::/64"}`:                              "not an IPv4 CIDR",
		`{"PoolID":"10.70.0.0/16","Address":"10.71.0.5"}`:   "outside the network's subnet",
		`{"PoolID":"bogus"}`:                                "pool ID",
		`{"PoolID":"10.70.0.0/16","Address":"10.70.0.500"}`: "not an IPv4 address",
	} {
		var err error
		if strings.Contains(body, "PoolID") {
			_, err = decodeRequestAddress([]byte(body))
		} else {
			_, err = decodeRequestPool([]byte(body))
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", body, err, want)
		}
	}
	a, err := decodeRequestAddress([]byte(`{"PoolID":"10.70.0.0/16","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`))
	if err != nil || !a.Gateway || a.Addr.IsValid() {
		t.Fatalf("gateway request: %+v %v", a, err)
	}
}

func TestDecodeEndpoint(t *testing.T) {
	c, err := decodeCreateEndpoint([]byte(`{"NetworkID":"` + netID + `","EndpointID":"` + epID + `","Interface":{"Address":"10.70.3.2/24","AddressIPv6":"","MacAddress":"02:42:0a:46:03:02"},"Options":{"com.docker.network.endpoint.exposedports":[]}}`))
	if err != nil || c.Addr != netip.MustParsePrefix("10.70.3.2/24") || c.MAC.String() != "02:42:0a:46:03:02" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, body := range []string{
		`{"NetworkID":"` + netID + `","EndpointID":"` + epID + `","Interface":{"MacAddress":"ff:ff:ff:ff:ff:ff"}}`,
		`{"NetworkID":"` + netID + `","EndpointID":"` + epID + `","Interface":{"Address":"10.70.3.2"}}`,
		`{"NetworkID":"` + netID + `","EndpointID":"` + strings.ToUpper(epID[:1]) + `"}`,
	} {
		if _, err := decodeCreateEndpoint([]byte(body)); err == nil {
			t.Errorf("%s decoded", body)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, m := range []string{"NetworkDriver.CreateNetwork", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join", "NetworkDriver.DeleteEndpoint", "IpamDriver.RequestPool", "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress", "NetworkDriver.DeleteNetwork"} {
		f.Add(m, []byte(`{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","IPv4Data":[{"Pool":"10.70.0.0/16"}],"Interface":{"Address":"10.70.3.2/24"},"PoolID":"10.70.0.0/16","Address":"10.70.3.2","Pool":"10.70.0.0/16"}`))
	}
	f.Fuzz(func(t *testing.T, method string, body []byte) {
		v, err := decodeRequest(method, body)
		if err != nil {
			return
		}
		switch r := v.(type) {
		case createNetwork:
			if checkID("", r.ID) != nil || !r.Pool.Addr().Is4() || r.Pool != r.Pool.Masked() {
				t.Fatalf("accepted %+v", r)
			}
		case createEndpoint:
			if checkID("", r.ID) != nil || checkID("", r.NetworkID) != nil || r.Addr.IsValid() && !r.Addr.Addr().Is4() {
				t.Fatalf("accepted %+v", r)
			}
		case requestAddress:
			if r.Addr.IsValid() && !r.Pool.Contains(r.Addr) {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}
