package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

func TestKeyringOutput(t *testing.T) {
	r := api.KeyringResponse{Op: "install", Failed: 1,
		Hosts: []api.KeyringHost{
			{Node: "h2", Primary: "OLD=", Keys: []string{"OLD=", "NEW="}},
			{Node: "h1", Primary: "OLD=", Keys: []string{"OLD=", "NEW="}},
			{Node: "h3", Primary: "OLD=", Keys: []string{"OLD="}, Error: "no answer: context deadline exceeded"},
		},
		Keys: []api.KeyringKey{{Key: "OLD=", Installed: 3, Primary: 3}, {Key: "NEW=", Installed: 2}},
	}
	var out bytes.Buffer
	err := keyringResult(&options{out: &out}, r)
	if err == nil || err.Error() != "keyring install failed on 1 of 3 hosts" {
		t.Errorf("error %v", err)
	}
	want := `KEY   INSTALLED  PRIMARY
OLD=  3/3        3/3
NEW=  2/3        0/3

HOST  KEYS  RESULT
h2    2     ok
h1    2     ok
h3    1     no answer: context deadline exceeded
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := keyringResult(&options{out: &out}, api.KeyringResponse{Op: "list", Hosts: []api.KeyringHost{{Node: "h1"}}}); err != nil ||
		!strings.Contains(out.String(), "no keys: gossip is not encrypted") {
		t.Errorf("empty keyring: %v\n%s", err, out.String())
	}
}
