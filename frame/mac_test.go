package frame

import (
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in      string
		want    MAC
		wantErr bool
	}{
		{in: "0:1:2:3:4:1", want: MAC{0, 1, 2, 3, 4, 1}},
		{in: "00:1A:2b:3C:4d:5E", want: MAC{0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e}},
		{in: "00-1a-2b-3c-4d-5e", want: MAC{0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e}},
		// The seed's parser shifted by 16 instead of 4: "12" must be 0x12, "f0" 0xf0.
		{in: "12:34:56:78:9a:bc", want: MAC{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}},
		{in: "f0:0f:ff:10:01:a", want: MAC{0xf0, 0x0f, 0xff, 0x10, 0x01, 0x0a}},
		{in: "ff:ff:ff:ff:ff:ff", want: Broadcast},
		{in: "", wantErr: true},
		{in: "00:1a:2b:3c:4d", wantErr: true},
		{in: "00:1a:2b:3c:4d:5e:6f", wantErr: true},
		{in: "00:1a-2b:3c:4d:5e", wantErr: true},
		{in: "001:a:2b:3c:4d:5e", wantErr: true},
		{in: "00::2b:3c:4d:5e", wantErr: true},
		{in: "00:1a:2b:3c:4d:5e:", wantErr: true},
		{in: ":00:1a:2b:3c:4d:5e", wantErr: true},
		{in: "00:1a:2b:3c:4d:5g", wantErr: true},
		{in: "0x:1a:2b:3c:4d:5e", wantErr: true},
		{in: "001a.2b3c.4d5e", wantErr: true},
		{in: " 00:1a:2b:3c:4d:5e", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMAC(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseMAC(%q) = %v, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "\""+tt.in+"\"") && tt.in != "" {
					t.Fatalf("ParseMAC(%q) error %q does not echo the input", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMAC(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseMAC(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMACStringRoundTrip(t *testing.T) {
	for _, m := range []MAC{{}, Broadcast, {0x02, 0, 0, 0, 0, 0x0a}, {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23}} {
		s := m.String()
		got, err := ParseMAC(s)
		if err != nil || got != m {
			t.Fatalf("ParseMAC(%q) = %v, %v; want %v", s, got, err, m)
		}
	}
	if got, want := (MAC{0x02, 0, 0, 0, 0, 0x0a}).String(), "02:00:00:00:00:0a"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestMACKinds(t *testing.T) {
	if !Broadcast.IsMulticast() || (MAC{0x01, 0, 0x5e, 0, 0, 1}).IsMulticast() == false {
		t.Fatal("broadcast and 01:00:5e:... must be multicast")
	}
	if (MAC{0x02, 0, 0, 0, 0, 1}).IsMulticast() {
		t.Fatal("02:00:00:00:00:01 is unicast")
	}
	if !(MAC{}).IsZero() || Broadcast.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

func TestLocalMAC(t *testing.T) {
	a, b := LocalMAC("alpha.eth0"), LocalMAC("beta.eth0")
	if a != LocalMAC("alpha.eth0") {
		t.Fatal("LocalMAC is not stable")
	}
	if a == b {
		t.Fatalf("LocalMAC(alpha.eth0) == LocalMAC(beta.eth0) == %v", a)
	}
	for _, m := range []MAC{a, b} {
		if m[0]&0x02 == 0 || m.IsMulticast() {
			t.Fatalf("LocalMAC gave %v: want locally administered unicast", m)
		}
	}
}

func TestMACText(t *testing.T) {
	var m MAC
	if err := m.UnmarshalText([]byte("00-1a-2b-3c-4d-5e")); err != nil {
		t.Fatalf("UnmarshalText: %v", err)
	}
	b, _ := m.MarshalText()
	if string(b) != "00:1a:2b:3c:4d:5e" {
		t.Fatalf("MarshalText = %q", b)
	}
	if err := m.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("UnmarshalText(nope) succeeded")
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"0:1:2:3:4:1", "00-1a-2b-3c-4d-5e", "ff:ff:ff:ff:ff:ff", "::::::", "a-b-c-d-e-f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		// Whatever parses must format and parse back to the same address.
		back, err := ParseMAC(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseMAC(%q) = %v, but ParseMAC(%q) = %v, %v", s, m, m.String(), back, err)
		}
	})
}
