package config_test

import (
	"testing"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
)

func TestEmbeddedDefaultIsValid(t *testing.T) {
	c, err := config.Parse("config.toml.example", vnetd.DefaultConfig)
	if err != nil {
		t.Fatalf("Parse(config.toml.example) = %v", err)
	}
	if len(c.Switches) < 2 || len(c.Namespaces) < 3 || len(c.Routers) < 1 || len(c.Forwards) < 1 {
		t.Errorf("default lab has %d switches, %d namespaces, %d routers, %d forwards; want >=2, >=3, >=1, >=1",
			len(c.Switches), len(c.Namespaces), len(c.Routers), len(c.Forwards))
	}
}
