package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovsfabric/ovsfabric/api"
)

func TestParseConf(t *testing.T) {
	for _, tc := range []struct {
		name, conf      string
		network, socket string
		code            uint
	}{
		{"full", `{"cniVersion":"1.1.0","name":"blue","type":"ovsfabric","network":"default","socket":"/run/x.sock"}`, "default", "/run/x.sock", 0},
		{"defaults", `{"cniVersion":"1.0.0","name":"default","type":"ovsfabric"}`, "default", api.DefaultSocket, 0},
		{"network is the name", `{"cniVersion":"1.0.0","name":"blue","type":"ovsfabric"}`, "blue", api.DefaultSocket, 0},
		{"malformed", `{"cniVersion":"1.0.0","name":`, "", "", types.ErrDecodingFailure},
		{"wrong type", `{"cniVersion":"1.0.0","name":"x","network":7}`, "", "", types.ErrDecodingFailure},
		{"no name", `{"cniVersion":"1.0.0","type":"ovsfabric"}`, "", "", types.ErrInvalidNetworkConfig},
		{"relative socket", `{"cniVersion":"1.0.0","name":"x","socket":"fabricd.sock"}`, "", "", types.ErrInvalidNetworkConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConf([]byte(tc.conf))
			if tc.code != 0 {
				var e *types.Error
				if !errors.As(err, &e) || e.Code != tc.code {
					t.Fatalf("got %v, want code %d", err, tc.code)
				}
				return
			}
			if err != nil || c.Network != tc.network || c.Socket != tc.socket {
				t.Errorf("got %+v %v", c, err)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	conf := `{"cniVersion":"1.1.0","name":"default","type":"ovsfabric","runtimeConfig":{
		"ips":["10.244.1.7/24"],"mac":"02:00:00:00:00:07",
		"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":5353,"containerPort":53,"protocol":"UDP"}],
		"aliases":{"default":["web","www"],"other":["no"]}}}`
	c, err := parseConf([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	req, err := request(c, "id1", "eth0", "/run/netns/x", "IgnoreUnknown=1;K8S_POD_NAME=web1;IP=10.244.1.9")
	if err != nil {
		t.Fatal(err)
	}
	want := api.CNIRequest{ContainerID: "id1", IfName: "eth0", NetNS: "/run/netns/x", Network: "default", Config: "default", Name: "web1",
		IP: "10.244.1.7", MAC: "02:00:00:00:00:07", Publish: []string{"8080:80/tcp", "5353:53/udp"}, Aliases: []string{"web", "www"}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request\n got %+v\nwant %+v", req, want)
	}
	plain, _ := parseConf([]byte(`{"cniVersion":"1.1.0","name":"default"}`))
	for _, tc := range []struct {
		args string
		ip   string
		code uint
	}{
		{"IP=10.244.1.9", "10.244.1.9", 0},
		{"IP=10.244.1.9;MAC=02:00:00:00:00:09", "10.244.1.9", 0},
		{"IP=nope", "", api.CNIErrAddress},
		{"IP=fd00::1", "", api.CNIErrAddress},
		{"MAC=zz", "", types.ErrInvalidEnvironmentVariables},
		{"FOO=1", "", types.ErrInvalidEnvironmentVariables},
		{"IgnoreUnknown=1;FOO=1", "", 0},
	} {
		req, err := request(plain, "id", "eth0", "/x", tc.args)
		var e *types.Error
		if tc.code != 0 {
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Errorf("%s: got %v, want code %d", tc.args, err, tc.code)
			}
			continue
		}
		if err != nil || req.IP != tc.ip {
			t.Errorf("%s: %+v %v", tc.args, req, err)
		}
	}
}

func TestBuildResultVersions(t *testing.T) {
	r := api.CNIResult{Attachment: api.Attachment{IfName: "eth0", IP: "10.244.1.7/24", Gateway: "10.244.1.1", MAC: "02:00:00:00:00:07",
		MTU: 1450, Port: "vf1234", NetNS: "/run/netns/x", Nameserver: "10.244.1.1"}, Network: "default", HostMAC: "02:00:00:00:00:08"}
	res, err := buildResult(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range specVersions.SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			conv, err := res.GetAsVersion(v)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(conv)
			back, err := version.NewResult(v, b)
			if err != nil {
				t.Fatal(err)
			}
			cur, err := current.NewResultFromResult(back)
			if err != nil {
				t.Fatal(err)
			}
			if len(cur.Interfaces) != 2 || cur.Interfaces[1].Sandbox != "/run/netns/x" || cur.Interfaces[0].Sandbox != "" {
				t.Errorf("interfaces %s", b)
			}
			if len(cur.IPs) != 1 || cur.IPs[0].Address.String() != "10.244.1.7/24" || cur.IPs[0].Gateway.String() != "10.244.1.1" || *cur.IPs[0].Interface != 1 {
				t.Errorf("ips %s", b)
			}
			if len(cur.Routes) != 1 || cur.Routes[0].Dst.String() != "0.0.0.0/0" || cur.Routes[0].GW.String() != "10.244.1.1" {
				t.Errorf("routes %s", b)
			}
			if !reflect.DeepEqual(cur.DNS.Nameservers, []string{"10.244.1.1"}) || !reflect.DeepEqual(cur.DNS.Search, []string{"default"}) {
				t.Errorf("dns %s", b)
			}
			if v != "0.4.0" && cur.Interfaces[1].Mtu != 1450 {
				t.Errorf("mtu %s", b)
			}
		})
	}
	if err := checkPrev(res, r); err != nil {
		t.Errorf("check against its own result: %v", err)
	}
	// A further network: its route instead of the default one; DNS only when fabricd serves it.
	second := r
	second.Network, second.IP, second.Gateway, second.Routes = "blue", "10.50.7.9/24", "10.50.7.1", []string{"10.50.0.0/16"}
	second.Nameserver = ""
	res2, err := buildResult(second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Routes) != 1 || res2.Routes[0].Dst.String() != "10.50.0.0/16" || res2.Routes[0].GW.String() != "10.50.7.1" || len(res2.DNS.Nameservers) != 0 {
		t.Errorf("result on a further network: routes %v dns %+v", res2.Routes, res2.DNS)
	}
	second.Nameserver = "10.50.7.1"
	if res2, _ = buildResult(second); !reflect.DeepEqual(res2.DNS.Nameservers, []string{"10.50.7.1"}) || !reflect.DeepEqual(res2.DNS.Search, []string{"blue"}) {
		t.Errorf("dns on blue: %+v", res2.DNS)
	}
	second.Routes = []string{"nope"}
	if _, err := buildResult(second); err == nil {
		t.Error("a bad route from fabricd is accepted")
	}
	r.IP = "10.244.1.8/24"
	if err := checkPrev(res, r); err == nil {
		t.Error("check accepts a prevResult with another address")
	}
}

func TestCNIError(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fabricd.sock")
	err := api.NewClient(sock).CNIStatus(context.Background(), "")
	for _, tc := range []struct {
		err  error
		code uint
		msg  string
	}{
		{err, types.ErrPluginNotAvailable, "fabricd is not running: nothing listens on " + sock},
		{&api.StatusError{Code: 404, Message: "unknown network \"blue\"", CNICode: api.CNIErrUnknownNetwork}, api.CNIErrUnknownNetwork, "unknown network"},
		{&api.StatusError{Code: 503, Message: "starting"}, types.ErrTryAgainLater, "starting"},
		{&api.StatusError{Code: 400, Message: "bad"}, types.ErrInvalidNetworkConfig, "bad"},
		{&api.StatusError{Code: 500, Message: "boom"}, types.ErrInternal, "boom"},
	} {
		var e *types.Error
		if got := cniError(tc.err, sock, types.ErrPluginNotAvailable); !errors.As(got, &e) || e.Code != tc.code || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%v: got %v, want code %d with %q", tc.err, got, tc.code, tc.msg)
		}
	}
	if cniError(nil, sock, 11) != nil {
		t.Error("nil error is not nil")
	}
}

// FuzzParseConf feeds the configuration and CNI_ARGS decoders what a runtime might pass.
func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"blue","type":"ovsfabric","runtimeConfig":{"ips":["10.0.0.1/24"],"portMappings":[{"hostPort":1,"containerPort":2}]}}`), "IP=10.0.0.2;MAC=02:00:00:00:00:01")
	f.Add([]byte(`{"name":"x","socket":"/s"}`), "IgnoreUnknown=1;K8S_POD_NAME=a")
	f.Fuzz(func(t *testing.T, conf []byte, args string) {
		c, err := parseConf(conf)
		if err != nil {
			return
		}
		if c.Network == "" || c.Socket == "" {
			t.Fatalf("parsed without defaults: %+v", c)
		}
		_, _ = request(c, "id", "eth0", "/x", args)
	})
}
