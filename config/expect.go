package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Expect is one [[expect]]: a reachability check `vnetd check` runs.
type Expect struct {
	// From is the namespace the check runs in.
	From string
	// To is the target: an address and port for a TCP connect, or an address alone
	// (Port 0) for a ping.
	To netip.AddrPort
	// Reach is the expected outcome.
	Reach bool
	// Timeout bounds the attempt; default 2s.
	Timeout time.Duration
}

// Ping reports whether the check is a ping (no port).
func (e Expect) Ping() bool { return e.To.Port() == 0 }

// Target is the check's target as written: "ADDR:PORT" or "ping ADDR".
func (e Expect) Target() string {
	if e.Ping() {
		return "ping " + e.To.Addr().String()
	}
	return e.To.String()
}

type rawExpect struct {
	From    string `toml:"from"`
	To      string `toml:"to"`
	Reach   *bool  `toml:"reach"`
	Timeout string `toml:"timeout"`
}

// MaxExpectTimeout is the largest timeout an [[expect]] may set.
const MaxExpectTimeout = 30 * time.Second

// expects checks every [[expect]] against c's namespaces.
func (v *validator) expects(raw []rawExpect, c *Config) {
	for i, r := range raw {
		p := fmt.Sprintf("expect.%d", i)
		e := Expect{From: r.From, Reach: true}
		if r.From == "" {
			v.errf(p, "expect needs from (a namespace)")
		} else if !v.hasNamespace(c, r.From) {
			v.errf(p+".from", "namespace %q is not defined", r.From)
		}
		if ap, err := netip.ParseAddrPort(r.To); err == nil && ap.Port() != 0 {
			e.To = ap
		} else if a, err := netip.ParseAddr(r.To); err == nil && r.To != "" {
			e.To = netip.AddrPortFrom(a, 0)
		} else {
			v.errf(p+".to", "to %q: want ADDR:PORT (a TCP connect) or ADDR (a ping), e.g. \"10.0.0.10:80\"", r.To)
		}
		if r.Reach == nil {
			v.errf(p, "expect needs reach = true or false")
		} else {
			e.Reach = *r.Reach
		}
		e.Timeout = v.duration(p+".timeout", r.Timeout, 2*time.Second)
		if e.Timeout <= 0 || e.Timeout > MaxExpectTimeout {
			v.errf(p+".timeout", "timeout %v out of range (0, %v]", e.Timeout, MaxExpectTimeout)
		}
		c.Expects = append(c.Expects, e)
	}
}
