package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/vnetd/vnetd/frame"
)

// Error is one validation problem at a place in the file.
type Error struct {
	// File is the file name as given to Parse.
	File string
	// Line and Col are 1-based.
	Line, Col int
	// Msg says what is wrong.
	Msg string
}

func (e Error) Error() string { return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg) }

// Errors is every problem found in a file, in file order. It is the error Load and
// Parse return when the file is not valid.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and validates a file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

type rawConfig struct {
	Daemon        rawDaemon          `toml:"daemon"`
	Switch        []rawSwitch        `toml:"switch"`
	Namespace     []rawNamespace     `toml:"namespace"`
	Router        []rawRouter        `toml:"router"`
	TAP           []rawTAP           `toml:"tap"`
	HostInterface []rawHostInterface `toml:"host_interface"`
	VXLAN         []rawVXLAN         `toml:"vxlan"`
	Socket        []rawSocket        `toml:"socket"`
	Forward       []rawForward       `toml:"forward"`
	Gateway       []rawGateway       `toml:"gateway"`
	Impair        []ImpairSpec       `toml:"impair"`
	Expect        []rawExpect        `toml:"expect"`
}

type rawDaemon struct {
	Control  string `toml:"control"`
	Metrics  string `toml:"metrics"`
	Web      string `toml:"web"`
	LogLevel string `toml:"log_level"`

	CaptureRingBytes   int  `toml:"capture_ring_bytes"`
	CaptureRingSeconds *int `toml:"capture_ring_seconds"`
}

type rawSwitch struct {
	Name                 string  `toml:"name"`
	MACAging             *string `toml:"mac_aging"`
	MaxMACs              *int    `toml:"max_macs"`
	PortMaxMACs          int     `toml:"port_max_macs"`
	PortMaxMACsViolation string  `toml:"port_max_macs_violation"`

	CaptureRingBytes   *int `toml:"capture_ring_bytes"`
	CaptureRingSeconds *int `toml:"capture_ring_seconds"`
}

type rawNamespace struct {
	Name    string       `toml:"name"`
	NIC     []rawNIC     `toml:"nic"`
	Route   []rawRoute   `toml:"route"`
	Service []rawService `toml:"service"`
}

type rawNIC struct {
	Name      string   `toml:"name"`
	Switch    string   `toml:"switch"`
	Peer      string   `toml:"peer"`
	Kind      string   `toml:"kind"`
	MAC       string   `toml:"mac"`
	Addresses []string `toml:"addresses"`
	MTU       *int     `toml:"mtu"`
	VLAN      int      `toml:"vlan"`
	// port security (see portsec.go)
	PortSecurity *bool    `toml:"port_security"`
	AllowMACs    []string `toml:"allow_macs"`
	AllowIPs     []string `toml:"allow_ips"`
}

type rawRoute struct {
	To  string `toml:"to"`
	Via string `toml:"via"`
	NIC string `toml:"nic"`
}

type rawService struct {
	Kind    string      `toml:"kind"`
	Listen  string      `toml:"listen"`
	NIC     string      `toml:"nic"`
	Range   string      `toml:"range"`
	Router  string      `toml:"router"`
	DNS     []string    `toml:"dns"`
	Lease   string      `toml:"lease"`
	Static  []rawStatic `toml:"static"`
	Zone    string      `toml:"zone"`
	Records []rawRecord `toml:"records"`
	// dns forwarding
	Forward            bool   `toml:"forward"`
	ResolvConf         string `toml:"resolv_conf"`
	ForwardMaxInFlight *int   `toml:"forward_max_inflight"`
	// iperf3
	MaxTests   *int `toml:"max_tests"`
	MaxStreams *int `toml:"max_streams"`
	// dhcp: the lease table's cap
	MaxLeases *int `toml:"max_leases"`
}

type rawStatic struct {
	MAC     string `toml:"mac"`
	Address string `toml:"address"`
}

type rawRecord struct {
	Name string `toml:"name"`
	A    string `toml:"a"`
	AAAA string `toml:"aaaa"`
}

type rawRouter struct {
	Name      string        `toml:"name"`
	Interface []rawRouterIf `toml:"interface"`
	Route     []rawRoute    `toml:"route"`
}

type rawRouterIf struct {
	Name      string   `toml:"name"`
	Switch    string   `toml:"switch"`
	MAC       string   `toml:"mac"`
	Addresses []string `toml:"addresses"`
	MTU       *int     `toml:"mtu"`
	VLAN      int      `toml:"vlan"`
	RA        *bool    `toml:"ra"`
	ProxyARP  bool     `toml:"proxy_arp"`
	Peer      string   `toml:"peer"`
}

type rawTAP struct {
	Name    string `toml:"name"`
	Switch  string `toml:"switch"`
	Create  *bool  `toml:"create"`
	MTU     *int   `toml:"mtu"`
	VLAN    int    `toml:"vlan"`
	Trunk   []int  `toml:"trunk"`
	Native  int    `toml:"native"`
	Offload *bool  `toml:"offload"`
	rawPortSecurity
	MaxMACs *int `toml:"max_macs"`
	Queues  *int `toml:"queues"`
}

type rawHostInterface struct {
	Name    string `toml:"name"`
	Switch  string `toml:"switch"`
	VLAN    int    `toml:"vlan"`
	Trunk   []int  `toml:"trunk"`
	Native  int    `toml:"native"`
	Ring    bool   `toml:"ring"`
	MaxMACs *int   `toml:"max_macs"`
	rawPortSecurity
}

// rawSocket has Socket's fields, in its order (validate converts one to the other);
// durations are TOML strings such as "10s".
type rawSocket struct {
	Path         string        `toml:"path"`
	Switch       string        `toml:"switch"`
	Protocol     string        `toml:"protocol"`
	MaxConns     int           `toml:"max_conns"`
	FrameTimeout time.Duration `toml:"frame_timeout"`
	MaxPeers     int           `toml:"max_peers"`
	PeerIdle     time.Duration `toml:"peer_idle"`
	MaxMACs      *int          `toml:"max_macs"`
	VLAN         int           `toml:"vlan"`
	Trunk        []int         `toml:"trunk"`
	Native       int           `toml:"native"`
	rawPortSecurity
}

type rawForward = ForwardSpec

// Parse decodes and validates src; name is used in error positions. On any problem
// it returns Errors listing all of them.
func Parse(name string, src []byte) (*Config, error) {
	var raw rawConfig
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := pe.Position.Line, pe.Position.Col
			if line < 1 || col < 1 {
				// The TOML library reports line 0 for some errors next to a "\r\n"
				// (found by FuzzParse): place them by their byte offset instead.
				line, col = lineCol(src, pe.Position.Start)
			}
			return nil, Errors{{File: name, Line: line, Col: col, Msg: pe.Message}}
		}
		return nil, Errors{{File: name, Line: 1, Col: 1, Msg: err.Error()}}
	}
	v := &validator{file: name, loc: newLocator(src)}
	seen := map[pos]bool{}
	for _, k := range md.Undecoded() {
		ps := v.loc.plain[k.String()]
		if len(ps) == 0 {
			ps = []pos{{1, 1}}
		}
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				v.errs = append(v.errs, Error{name, p.line, p.col, fmt.Sprintf("unknown key %q", k.String())})
			}
		}
	}
	cfg := v.build(&raw)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool {
			a, b := v.errs[i], v.errs[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Col < b.Col
		})
		return nil, v.errs
	}
	cfg.src = keepSource(name, v.loc, &raw, src)
	return cfg, nil
}

// lineCol is the 1-based line and column of byte offset off in src.
func lineCol(src []byte, off int) (line, col int) {
	off = min(max(off, 0), len(src))
	line = 1 + strings.Count(string(src[:off]), "\n")
	return line, off - strings.LastIndexByte(string(src[:off]), '\n')
}

type validator struct {
	file string
	loc  *locator
	errs Errors
	imp  *importAt // set while checking an imported namespace (see spec.go)
}

func (v *validator) errf(path, format string, args ...any) {
	if v.imp != nil {
		v.imp.add(path, fmt.Sprintf(format, args...))
		return
	}
	p := v.loc.find(path)
	v.errs = append(v.errs, Error{v.file, p.line, p.col, fmt.Sprintf(format, args...)})
}

func (v *validator) duration(path, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		v.errf(path, "bad duration %q (want Go syntax such as \"5m\")", s)
		return def
	}
	return d
}

func (v *validator) prefixes(path string, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			v.errf(path, "bad address %q: want CIDR such as \"10.0.0.2/24\"", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (v *validator) addr(path, what, s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		v.errf(path, "bad %s %q: not an IP address", what, s)
	}
	return a
}

func (v *validator) mac(path, s, derive string) frame.MAC {
	if s == "" {
		return frame.LocalMAC(derive)
	}
	m, err := frame.ParseMAC(s)
	if err != nil {
		v.errf(path, "bad MAC %q", s)
		return frame.LocalMAC(derive)
	}
	if m.IsMulticast() || m.IsZero() {
		v.errf(path, "MAC %s is not a unicast address", m)
	}
	return m
}

func (v *validator) mtu(path string, p *int) int {
	if p == nil {
		return 1500
	}
	if *p < 576 || *p > 65535 {
		v.errf(path, "mtu %d out of range 576-65535", *p)
		return 1500
	}
	return *p
}

func (v *validator) vlan(path string, n int) uint16 {
	if n < 0 || n > 4094 {
		v.errf(path, "vlan %d out of range 0-4094", n)
		return 0
	}
	return uint16(n)
}

func (v *validator) name(path, what, s string, seen map[string]bool) {
	switch {
	case s == "":
		v.errf(path, "%s needs a name", what)
	case strings.IndexFunc(s, spaceOrControl) >= 0:
		v.errf(path+".name", "%s name %q may not contain whitespace or control characters", what, s)
	case strings.ContainsAny(s, "/.:#"):
		v.errf(path+".name", "%s name %q may not contain spaces, '/', '.', ':' or '#'", what, s)
	case seen[s]:
		v.errf(path+".name", "duplicate %s name %q", what, s)
	}
	seen[s] = true
}

// spaceOrControl matches the runes no name may hold: they break listings, logs,
// port names and the kernel's interface names.
func spaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// listenAddr parses ":80", "0.0.0.0:80" or "[::]:80".
func parseHostPort(s string) (netip.AddrPort, error) {
	if strings.HasPrefix(s, ":") {
		n, err := strconv.ParseUint(s[1:], 10, 16)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(netip.Addr{}, uint16(n)), nil
	}
	return netip.ParseAddrPort(s)
}
