package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const specLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "gw"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  mtu = 1400
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.110"
  lease = "10m"
[[namespace]]
name = "other"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.9/24"]
`

// TestCheckNamespaceRoundTrip exports a namespace's table through JSON and checks
// it back in under another name, and checks the errors an import gets: a clash is
// ErrNamespaceExists, bad values and collisions with the running parts are
// ErrInvalidNamespace at JSON paths.
func TestCheckNamespaceRoundTrip(t *testing.T) {
	c, err := Parse("lab.toml", []byte(specLab))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	spec, ok := c.Spec("gw")
	if !ok {
		t.Fatal(`c.Spec("gw") not found`)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) NamespaceSpec {
		var s NamespaceSpec
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The same name: a clash.
	if _, _, err := CheckNamespace(c, "ns.json", decode(b)); !errors.Is(err, ErrNamespaceExists) {
		t.Fatalf("CheckNamespace(same name) = %v, want ErrNamespaceExists", err)
	}
	// Another name: its derived MAC differs, but 10.0.0.1 is gw's on lan0.
	s := decode(b)
	s["name"] = "gw2"
	_, _, err = CheckNamespace(c, "ns.json", s)
	if !errors.Is(err, ErrInvalidNamespace) || !strings.Contains(err.Error(), "ns.json: $.config.nic[0].addresses: address 10.0.0.1 of nic gw2.eth0 is already used by nic gw.eth0 (lab.toml:9:3)") {
		t.Fatalf("CheckNamespace(gw2) = %v, want the duplicate address at $.config.nic[0].addresses", err)
	}
	// A fresh address: accepted, with the file's values.
	s = decode([]byte(strings.ReplaceAll(string(b), "10.0.0.1/24", "10.0.0.2/24")))
	s["name"] = "gw2"
	ns, c2, err := CheckNamespace(c, "ns.json", s)
	if err != nil {
		t.Fatalf("CheckNamespace(gw2 at 10.0.0.2): %v", err)
	}
	if ns.Name != "gw2" || ns.NICs[0].MTU != 1400 || len(ns.Services) != 1 || ns.Services[0].Lease.String() != "10m0s" {
		t.Errorf("imported namespace = %+v, want gw2 with mtu 1400 and a 10m dhcp lease", ns)
	}
	if !c2.Imported("gw2") || c2.Imported("gw") || c.Imported("gw2") || len(c.Namespaces) != 2 || len(c2.Namespaces) != 3 {
		t.Errorf("Imported: c2 gw2 %v gw %v, c gw2 %v; namespaces %d then %d", c2.Imported("gw2"), c2.Imported("gw"), c.Imported("gw2"), len(c.Namespaces), len(c2.Namespaces))
	}
	if _, ok := c2.Spec("gw2"); !ok {
		t.Error(`c2.Spec("gw2") not found`)
	}
	// Bad values and unknown keys, each at its JSON path.
	s = decode([]byte(`{"name":"bad","nic":[{"name":"eth0","switch":"nope","addresses":["x"],"colour":"red"}],"service":[{"kind":"dhcp","nic":"eth0","range":"1-2"}]}`))
	_, _, err = CheckNamespace(c, "ns.json", s)
	for _, want := range []string{
		`ns.json: $.config.nic[0].switch: switch "nope" is not defined`,
		`ns.json: $.config.nic[0].addresses: bad address "x"`,
		`ns.json: $.config.nic.colour: unknown key "nic.colour"`,
		`ns.json: $.config.service[0]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckNamespace(bad) = %v, want it to say %q", err, want)
		}
	}
}
