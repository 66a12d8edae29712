package config

import (
	"fmt"
	"strings"
)

// pos is a 1-based line and column in the source file.
type pos struct{ line, col int }

// locator maps key paths to where they appear in the file. Paths carry array-of-table
// indices, e.g. "namespace.0.nic.1.addresses"; a table header is found under its own
// path ("namespace.0.nic.1"). It is a line scanner for the subset of TOML vnetd's
// files use (headers, key = value lines); anything it cannot place falls back to the
// nearest enclosing table, then to 1:1.
type locator struct {
	at    map[string]pos
	plain map[string][]pos // index-free path -> every occurrence, for unknown keys
}

func newLocator(src []byte) *locator {
	l := &locator{at: map[string]pos{}, plain: map[string][]pos{}}
	counts := map[string]int{} // indexed parent path + array name -> next index
	cur := ""                  // indexed path of the current table
	curPlain := ""
	for i, line := range strings.Split(string(src), "\n") {
		trim := strings.TrimLeft(line, " \t")
		col := len(line) - len(trim) + 1
		p := pos{i + 1, col}
		switch {
		case strings.HasPrefix(trim, "[["):
			end := strings.Index(trim, "]]")
			if end < 0 {
				continue
			}
			parts := strings.Split(strings.TrimSpace(trim[2:end]), ".")
			// Resolve every parent segment to its latest array index.
			path, plain := "", ""
			for j, seg := range parts {
				seg = strings.TrimSpace(seg)
				plain = join(plain, seg)
				if j == len(parts)-1 {
					n := counts[join(path, seg)]
					counts[join(path, seg)] = n + 1
					path = join(path, fmt.Sprintf("%s.%d", seg, n))
				} else if n, ok := counts[join(path, seg)]; ok && n > 0 {
					path = join(path, fmt.Sprintf("%s.%d", seg, n-1))
				} else {
					path = join(path, seg)
				}
			}
			cur, curPlain = path, plain
			l.at[cur] = p
			l.plain[curPlain] = append(l.plain[curPlain], p)
		case strings.HasPrefix(trim, "["):
			end := strings.Index(trim, "]")
			if end < 0 {
				continue
			}
			cur = strings.TrimSpace(trim[1:end])
			curPlain = cur
			l.at[cur] = p
			l.plain[curPlain] = append(l.plain[curPlain], p)
		case trim == "" || trim[0] == '#':
		default:
			eq := strings.Index(trim, "=")
			if eq <= 0 {
				continue
			}
			key := strings.Trim(strings.TrimSpace(trim[:eq]), `"`)
			if strings.ContainsAny(key, " \t,{}[]") {
				continue
			}
			l.at[join(cur, key)] = p
			l.plain[join(curPlain, key)] = append(l.plain[join(curPlain, key)], p)
		}
	}
	return l
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// find returns the position of path, or of its closest enclosing table.
func (l *locator) find(path string) pos {
	for path != "" {
		if p, ok := l.at[path]; ok {
			return p
		}
		i := strings.LastIndex(path, ".")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return pos{1, 1}
}
