package frame

import (
	"fmt"
	"strings"
)

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ParseMAC parses an Ethernet address written as six groups of one or two hex digits
// separated all by ':' or all by '-': "0:1:2:3:4:1", "00:1A:2b:3C:4d:5E",
// "00-1a-2b-3c-4d-5e". Anything else is an error that quotes the input.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	sep := byte(':')
	if strings.IndexByte(s, '-') >= 0 {
		sep = '-'
	}
	group, digits := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == sep {
			if digits == 0 {
				return MAC{}, fmt.Errorf("invalid MAC address %q: empty group", s)
			}
			group++
			digits = 0
			if group > 5 {
				return MAC{}, fmt.Errorf("invalid MAC address %q: more than 6 groups", s)
			}
			continue
		}
		v, ok := hexVal(c)
		if !ok {
			return MAC{}, fmt.Errorf("invalid MAC address %q: unexpected %q", s, c)
		}
		digits++
		if digits > 2 {
			return MAC{}, fmt.Errorf("invalid MAC address %q: group %d has more than 2 hex digits", s, group+1)
		}
		m[group] = m[group]<<4 | v
	}
	if group != 5 || digits == 0 {
		return MAC{}, fmt.Errorf("invalid MAC address %q: want 6 groups of hex digits separated by ':' or '-'", s)
	}
	return m, nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats m as "02:00:00:00:00:0a".
func (m MAC) String() string {
	const hexdig = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexdig[v>>4]
		b[i*3+1] = hexdig[v&0xf]
	}
	return string(b[:])
}

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// LocalMAC derives a stable locally-administered unicast MAC from a name, for NICs and
// interfaces whose config gives none. The same name always gives the same address.
func LocalMAC(name string) MAC {
	// FNV-1a 64: stable across runs and Go versions.
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return MAC{0x02, byte(h >> 32), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
}
