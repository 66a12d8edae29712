package pcapfilter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// node is a parsed expression: andNode, orNode, notNode or atom.
type node any

type (
	andNode struct{ a, b node }
	orNode  struct{ a, b node }
	notNode struct{ a node }
)

const (
	jeq   = bpf.JumpEqual
	jge   = bpf.JumpGreaterOrEqual
	jle   = bpf.JumpLessOrEqual
	jnone = bpf.JumpBitsNotSet
)

// atom is one load and one conditional jump: the frame's size bytes at off (behind the
// IPv4 header, whose length the byte at ihl says, when ind), masked when mask is not
// 0, compared with val.
type atom struct {
	ind  bool
	ihl  uint32
	size int
	off  uint32
	mask uint32
	cond bpf.JumpTest
	val  uint32
}

// accept is what a matching frame's program returns: the snap length, as libpcap's.
const accept = 262144

// Filter is a compiled expression. A nil *Filter matches every frame. Its methods are
// safe for concurrent use.
type Filter struct {
	expr string
	prog []bpf.Instruction
	vm   *bpf.VM
}

// Compile compiles expr. An empty (or all-space) expression returns a nil *Filter,
// which matches everything. A bad expression returns a *SyntaxError.
func Compile(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{expr: expr, toks: toks, lo: 14}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.s != "" {
		if t.s == ")" {
			return nil, p.errAt(t, "\")\" without a \"(\"")
		}
		return nil, p.errAt(t, "expected and, or or the end, found %s", describe(t))
	}
	g := &gen{}
	yes, no := g.label(), g.label()
	g.node(n, yes, no)
	g.place(yes)
	g.emit(bpf.RetConstant{Val: accept})
	g.place(no)
	g.emit(bpf.RetConstant{Val: 0})
	if err := g.resolve(); err != nil {
		return nil, &SyntaxError{expr, 1, err.Error()}
	}
	vm, err := bpf.NewVM(g.prog)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err) // a bug in gen
	}
	return &Filter{expr: expr, prog: g.prog, vm: vm}, nil
}

// Match reports whether the frame b (from its Ethernet header on) matches. A load
// past the end of b fails the match, as in the kernel.
func (f *Filter) Match(b []byte) bool {
	if f == nil {
		return true
	}
	n, err := f.vm.Run(b)
	return err == nil && n > 0
}

// String returns the expression as given ("" for a nil Filter).
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.expr
}

// Program returns the compiled instructions (like tcpdump -d).
func (f *Filter) Program() []bpf.Instruction {
	if f == nil {
		return []bpf.Instruction{bpf.RetConstant{Val: accept}}
	}
	return f.prog
}

// gen emits a program with forward jumps to labels, resolved at the end.
type gen struct {
	prog   []bpf.Instruction
	labels []int // instruction index of each label, -1 until placed
	fixups []fixup
}

type fixup struct{ at, yes, no int }

func (g *gen) label() int             { g.labels = append(g.labels, -1); return len(g.labels) - 1 }
func (g *gen) place(l int)            { g.labels[l] = len(g.prog) }
func (g *gen) emit(i bpf.Instruction) { g.prog = append(g.prog, i) }

// node emits n so that control reaches label yes when it matches and no when not.
// Both labels are placed after n's code, so every jump is forward.
func (g *gen) node(n node, yes, no int) {
	switch n := n.(type) {
	case andNode:
		mid := g.label()
		g.node(n.a, mid, no)
		g.place(mid)
		g.node(n.b, yes, no)
	case orNode:
		mid := g.label()
		g.node(n.a, yes, mid)
		g.place(mid)
		g.node(n.b, yes, no)
	case notNode:
		g.node(n.a, no, yes)
	case atom:
		if n.ind {
			g.emit(bpf.LoadMemShift{Off: n.ihl})
			g.emit(bpf.LoadIndirect{Off: n.off, Size: n.size})
		} else {
			g.emit(bpf.LoadAbsolute{Off: n.off, Size: n.size})
		}
		if n.mask != 0 {
			g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: n.mask})
		}
		g.fixups = append(g.fixups, fixup{len(g.prog), yes, no})
		g.emit(bpf.JumpIf{Cond: n.cond, Val: n.val})
	default:
		panic(fmt.Sprintf("pcapfilter: unknown node %T", n))
	}
}

func (g *gen) resolve() error {
	for _, f := range g.fixups {
		j := g.prog[f.at].(bpf.JumpIf)
		yes, no := g.labels[f.yes]-f.at-1, g.labels[f.no]-f.at-1
		if yes > 255 || no > 255 {
			return fmt.Errorf("expression too long: a jump spans %d instructions (classic BPF allows 255)", max(yes, no))
		}
		j.SkipTrue, j.SkipFalse = uint8(yes), uint8(no)
		g.prog[f.at] = j
	}
	return nil
}
