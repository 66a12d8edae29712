package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
)

var posRE = regexp.MustCompile(`^lab\.toml:[0-9]+:[0-9]+: \S`)

// FuzzParse feeds arbitrary bytes to the loader: nothing may panic, a file is either a
// config or a non-empty config.Errors, and every error is FILE:LINE:COL: message with a
// line inside the file (or just past its end) and a column >= 1.
func FuzzParse(f *testing.F) {
	f.Add(vnetd.DefaultConfig)
	tomls, _ := filepath.Glob("testdata/*.toml")
	for _, p := range tomls {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[[switch]]\nname = \"lan0\"\n[[switch]]\nname = \"lan0\"\n"))
	f.Add([]byte("[daemon\n"))
	f.Add([]byte("[[namespace]]\nname=\"a\"\n[[namespace.nic]]\nname=\"e\"\naddresses=[\"300.0.0.1/24\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse("lab.toml", b)
		if err == nil {
			if c == nil {
				t.Fatal("Parse() = nil, nil")
			}
			return
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("Parse() error %T %q, want a non-empty config.Errors", err, err)
		}
		lines := bytes.Count(b, []byte("\n")) + 1
		for _, e := range es {
			if e.File != "lab.toml" || e.Line < 1 || e.Line > lines+1 || e.Col < 1 || strings.TrimSpace(e.Msg) == "" {
				t.Errorf("error %+v: want lab.toml, line 1-%d, col >= 1, a message", e, lines+1)
			}
			if s := e.Error(); !posRE.MatchString(s) {
				t.Errorf("error %q is not FILE:LINE:COL: message", s)
			}
		}
	})
}
