package config

import (
	"strings"
	"testing"
)

// TestTAPQueues: queues defaults to 1 and takes 1-MaxTAPQueues; anything else is a
// FILE:LINE:COL error (more cases in testdata/tapqueues.toml).
func TestTAPQueues(t *testing.T) {
	for _, tt := range []struct {
		key     string
		want    int
		wantErr string
	}{
		{"", 1, ""},
		{"queues = 1", 1, ""},
		{"queues = 4", 4, ""},
		{"queues = 16", 16, ""},
		{"queues = 0", 0, "t.toml:5:1: queues 0 out of range 1-16"},
		{"queues = 256", 0, "t.toml:5:1: queues 256 out of range 1-16"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			c, err := Parse("t.toml", []byte("[[switch]]\nname = \"lan0\"\n[[tap]]\nname = \"t0\"\n"+tt.key+"\nswitch = \"lan0\"\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%s) = %v, want %q", tt.key, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%s) = %v", tt.key, err)
			}
			if got := c.TAPs[0].Queues; got != tt.want {
				t.Errorf("Parse(%s): Queues = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}
