package procstat

import "testing"

// TestRSSGrows: touching 64 MiB raises the figure by at least most of that.
func TestRSSGrows(t *testing.T) {
	before, err := RSS()
	if err != nil || before <= 0 {
		t.Fatalf("RSS() = %d, %v", before, err)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		if i%4096 == 0 {
			b[i] = 1
		}
	}
	after, err := RSS()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 48<<20 {
		t.Errorf("RSS grew %d bytes after touching 64 MiB, want at least 48 MiB", after-before)
	}
	_ = b[len(b)-1]
}
