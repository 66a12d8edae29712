package pcapfilter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vnetd/vnetd/frame"
)

// SyntaxError is a filter expression that does not compile. Col is the 1-based
// column (in bytes) of the word it is about.
type SyntaxError struct {
	Expr string
	Col  int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("filter %q: column %d: %s", e.Expr, e.Col, e.Msg)
}

// Caret returns the expression with a second line pointing at the column, for a
// terminal.
func (e *SyntaxError) Caret() string {
	return e.Expr + "\n" + strings.Repeat(" ", max(e.Col-1, 0)) + "^"
}

// token is one word or operator of an expression.
type token struct {
	s   string
	pos int // 0-based byte offset
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == ':' || c == '/' || c == '-' || c == '_'
}

func lex(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{expr[i : i+1], i})
			i++
		case c == '!':
			toks = append(toks, token{"not", i})
			i++
		case c == '&' || c == '|':
			if i+1 >= len(expr) || expr[i+1] != c {
				return nil, &SyntaxError{expr, i + 1, fmt.Sprintf("%q is not an operator (%q is)", c, string([]byte{c, c}))}
			}
			op := "and"
			if c == '|' {
				op = "or"
			}
			toks = append(toks, token{op, i})
			i += 2
		case isWordByte(c):
			j := i
			for j < len(expr) && isWordByte(expr[j]) {
				j++
			}
			toks = append(toks, token{expr[i:j], i}) // keywords are lower case, as in libpcap
			i = j
		default:
			return nil, &SyntaxError{expr, i + 1, fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return toks, nil
}

// qual is the qualifiers of a primitive: [proto] [dir] kind.
type qual struct {
	proto, dir, kind string
}

type parser struct {
	expr string
	toks []token
	i    int
	lo   uint32 // where the link header ends: 14, 18 after a vlan primitive
	last qual   // the qualifiers an ID standing alone repeats
	have bool   // last is set
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{"", len(p.expr)}
}

func (p *parser) next() token { t := p.peek(); p.i++; return t }

func (p *parser) errAt(t token, format string, args ...any) error {
	return &SyntaxError{p.expr, t.pos + 1, fmt.Sprintf(format, args...)}
}

func describe(t token) string {
	if t.s == "" {
		return "the end"
	}
	return strconv.Quote(t.s)
}

func (p *parser) parseOr() (node, error) {
	a, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().s == "or" {
		p.next()
		b, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		a = orNode{a, b}
	}
	return a, nil
}

func (p *parser) parseAnd() (node, error) {
	a, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.peek().s == "and" {
		p.next()
		b, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		a = andNode{a, b}
	}
	return a, nil
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	switch t.s {
	case "not":
		p.next()
		a, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{a}, nil
	case "(":
		p.next()
		a, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.s != ")" {
			return nil, p.errAt(c, "expected \")\" to close the \"(\" at column %d, found %s", t.pos+1, describe(c))
		}
		return a, nil
	case "", ")", "and", "or":
		return nil, p.errAt(t, "expected a primitive (host, net, port, tcp, ...), found %s", describe(t))
	}
	return p.parsePrimitive()
}

var (
	protos   = map[string]bool{"ether": true, "ip": true, "ip6": true, "arp": true, "tcp": true, "udp": true}
	bare     = map[string]bool{"ip": true, "ip6": true, "arp": true, "tcp": true, "udp": true, "icmp": true, "icmp6": true}
	dirs     = map[string]bool{"src": true, "dst": true}
	kinds    = map[string]bool{"host": true, "net": true, "port": true, "portrange": true}
	keywords = map[string]bool{"and": true, "or": true, "not": true, "(": true, ")": true, "vlan": true}
)

func (p *parser) parsePrimitive() (node, error) {
	start := p.peek()
	if start.s == "vlan" {
		return p.parseVLAN()
	}
	var q qual
	if protos[start.s] || start.s == "icmp" || start.s == "icmp6" {
		q.proto = p.next().s
	}
	if dirs[p.peek().s] {
		q.dir = p.next().s
	}
	if kinds[p.peek().s] {
		q.kind = p.next().s
	}
	switch {
	case q.kind == "" && q.dir != "":
		q.kind = "host" // `src 10.0.0.1` is `src host 10.0.0.1`
	case q.kind == "" && q.proto != "":
		if !bare[q.proto] {
			return nil, p.errAt(start, "%q needs host, src or dst after it", q.proto)
		}
		return p.proto(start, q.proto)
	case q.kind == "":
		// An ID alone repeats the qualifiers of the primitive before it.
		if !p.have {
			return nil, p.errAt(start, "unknown word %s: expected host, net, port, portrange, a protocol or vlan", describe(start))
		}
		q = p.last
	}
	id := p.next()
	if id.s == "" || keywords[id.s] || kinds[id.s] || dirs[id.s] {
		return nil, p.errAt(id, "expected a value after %q, found %s", q.kind, describe(id))
	}
	n, err := p.build(q, id)
	if err != nil {
		return nil, err
	}
	p.last, p.have = q, true
	return n, nil
}

func (p *parser) parseVLAN() (node, error) {
	t := p.next()
	lo := p.lo
	n := node(atom{size: 2, off: lo - 2, cond: jeq, val: 0x8100})
	if id := p.peek(); id.s != "" && id.s[0] >= '0' && id.s[0] <= '9' {
		p.next()
		v, err := strconv.ParseUint(id.s, 10, 16)
		if err != nil || v > 4095 {
			return nil, p.errAt(id, "bad VLAN ID %q (0-4095)", id.s)
		}
		n = andNode{n, atom{size: 2, off: lo, mask: 0x0fff, cond: jeq, val: uint32(v)}}
	}
	_ = t
	p.lo += 4 // the rest of the expression looks behind the tag
	p.have = false
	return n, nil
}

// proto builds a protocol name standing alone.
func (p *parser) proto(t token, name string) (node, error) {
	switch name {
	case "ip":
		return p.etherType(0x0800), nil
	case "ip6":
		return p.etherType(0x86dd), nil
	case "arp":
		return p.etherType(0x0806), nil
	case "tcp":
		return orNode{p.ip4Proto(6), p.ip6Proto(6)}, nil
	case "udp":
		return orNode{p.ip4Proto(17), p.ip6Proto(17)}, nil
	case "icmp":
		return p.ip4Proto(1), nil
	case "icmp6":
		return p.ip6Proto(58), nil
	}
	return nil, p.errAt(t, "unknown protocol %q", name)
}

func (p *parser) etherType(t uint32) node { return atom{size: 2, off: p.lo - 2, cond: jeq, val: t} }

func (p *parser) ip4Proto(proto uint32) node {
	return andNode{p.etherType(0x0800), atom{size: 1, off: p.lo + 9, cond: jeq, val: proto}}
}

func (p *parser) ip6Proto(proto uint32) node {
	return andNode{p.etherType(0x86dd), atom{size: 1, off: p.lo + 6, cond: jeq, val: proto}}
}

// either picks the source test, the destination test or both by dir.
func either(dir string, src, dst node) node {
	switch dir {
	case "src":
		return src
	case "dst":
		return dst
	}
	return orNode{src, dst}
}

func (p *parser) build(q qual, id token) (node, error) {
	switch q.kind {
	case "host", "net":
		if q.proto == "ether" {
			if q.kind == "net" {
				return nil, p.errAt(id, "ether takes host, src or dst, not net")
			}
			m, err := frame.ParseMAC(id.s)
			if err != nil {
				return nil, p.errAt(id, "bad MAC address %q", id.s)
			}
			return either(q.dir, macAt(6, m), macAt(0, m)), nil
		}
		var pfx netip.Prefix
		var err error
		if q.kind == "net" {
			pfx, err = netip.ParsePrefix(id.s)
			if err != nil {
				return nil, p.errAt(id, "bad network %q (want an address/prefix length, like 10.0.0.0/24)", id.s)
			}
			pfx = pfx.Masked()
		} else {
			a, perr := netip.ParseAddr(id.s)
			if perr != nil || a.Zone() != "" {
				return nil, p.errAt(id, "bad host %q (want an IPv4 or IPv6 address; names are not looked up)", id.s)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		return p.addr(q, id, pfx)
	case "port", "portrange":
		if q.proto != "" && q.proto != "tcp" && q.proto != "udp" {
			return nil, p.errAt(id, "%s takes tcp or udp before it, not %s", q.kind, q.proto)
		}
		lo, hi, err := parsePorts(q.kind, id.s)
		if err != nil {
			return nil, p.errAt(id, "%v", err)
		}
		return p.ports(q, lo, hi), nil
	}
	return nil, p.errAt(id, "unknown kind %q", q.kind)
}

func parsePorts(kind, s string) (lo, hi uint32, err error) {
	num := func(s string) (uint32, error) {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad port %q (want a number 0-65535; service names are not looked up)", s)
		}
		return uint32(v), nil
	}
	if kind == "port" {
		lo, err = num(s)
		return lo, lo, err
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad port range %q (want LO-HI)", s)
	}
	if lo, err = num(a); err != nil {
		return
	}
	if hi, err = num(b); err != nil {
		return
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("bad port range %q: %d > %d", s, lo, hi)
	}
	return lo, hi, nil
}

func macAt(off uint32, m frame.MAC) node {
	return andNode{
		atom{size: 4, off: off, cond: jeq, val: uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])},
		atom{size: 2, off: off + 4, cond: jeq, val: uint32(m[4])<<8 | uint32(m[5])},
	}
}

// prefixAt tests the address of pfx's length at off against pfx, 32 bits at a time.
func prefixAt(off uint32, pfx netip.Prefix) node {
	b := pfx.Addr().AsSlice()
	var n node
	for w := 0; w*32 < pfx.Bits(); w++ {
		bits := min(pfx.Bits()-w*32, 32)
		mask := uint32(0xffffffff) << (32 - bits)
		v := uint32(b[4*w])<<24 | uint32(b[4*w+1])<<16 | uint32(b[4*w+2])<<8 | uint32(b[4*w+3])
		a := atom{size: 4, off: off + uint32(4*w), cond: jeq, val: v & mask}
		if mask != 0xffffffff {
			a.mask = mask
		}
		if n == nil {
			n = a
		} else {
			n = andNode{n, a}
		}
	}
	return n
}

func (p *parser) addr(q qual, id token, pfx netip.Prefix) (node, error) {
	// test is the IP version's EtherType check and, unless the prefix is /0, the
	// address test.
	test := func(guard node, src, dst uint32) node {
		if pfx.Bits() == 0 {
			return guard
		}
		return andNode{guard, either(q.dir, prefixAt(src, pfx), prefixAt(dst, pfx))}
	}
	if pfx.Addr().Is6() {
		switch q.proto {
		case "", "ip6":
			return test(p.etherType(0x86dd), p.lo+8, p.lo+24), nil
		}
		return nil, p.errAt(id, "%s is an IPv6 address: %s %s does not take it", id.s, q.proto, q.kind)
	}
	ip := test(p.etherType(0x0800), p.lo+12, p.lo+16)
	arp := test(p.etherType(0x0806), p.lo+14, p.lo+24) // sender and target protocol addresses
	switch q.proto {
	case "":
		return orNode{ip, arp}, nil
	case "ip":
		return ip, nil
	case "arp":
		return arp, nil
	}
	return nil, p.errAt(id, "%s is an IPv4 address: %s %s does not take it", id.s, q.proto, q.kind)
}

func (p *parser) ports(q qual, lo, hi uint32) node {
	portTest := func(a atom) node {
		if lo == hi {
			a.cond, a.val = jeq, lo
			return a
		}
		b := a
		a.cond, a.val = jge, lo
		b.cond, b.val = jle, hi
		return andNode{a, b}
	}
	l4 := func(proto func(uint32) node) node {
		switch q.proto {
		case "tcp":
			return proto(6)
		case "udp":
			return proto(17)
		}
		return orNode{proto(6), proto(17)}
	}
	v4 := andNode{
		andNode{l4(p.ip4Proto), atom{size: 2, off: p.lo + 6, cond: jnone, val: 0x1fff}}, // first fragment
		either(q.dir,
			portTest(atom{ind: true, ihl: p.lo, size: 2, off: p.lo}),
			portTest(atom{ind: true, ihl: p.lo, size: 2, off: p.lo + 2})),
	}
	v6 := andNode{l4(p.ip6Proto), either(q.dir,
		portTest(atom{size: 2, off: p.lo + 40}),
		portTest(atom{size: 2, off: p.lo + 42}))}
	return orNode{v4, v6}
}
