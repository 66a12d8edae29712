package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// NamespaceSpec is one [[namespace]] table as written: the file's keys and values
// (TOML keys, nested tables for its nic, route and service arrays). It is the
// "config" of `vnetd export` and the document `vnetd import` checks.
type NamespaceSpec = map[string]any

// source is what a parsed config keeps of its file so a namespace can be exported
// as written and an imported one checked exactly as if its table were appended to
// the file.
type source struct {
	file   string
	loc    *locator
	raw    rawConfig
	tables []NamespaceSpec // raw.Namespace[i] as written, by index
	nFile  int             // how many of raw.Namespace come from the file
}

func keepSource(file string, loc *locator, raw *rawConfig, src []byte) *source {
	s := &source{file: file, loc: loc, raw: *raw, nFile: len(raw.Namespace)}
	var generic struct {
		Namespace []map[string]any `toml:"namespace"`
	}
	if _, err := toml.Decode(string(src), &generic); err == nil && len(generic.Namespace) == len(raw.Namespace) {
		s.tables = generic.Namespace
	} else {
		s.tables = make([]NamespaceSpec, len(raw.Namespace))
	}
	return s
}

// Spec returns namespace name's table as written (in the file, or in the import
// that added it), and whether c has it.
func (c *Config) Spec(name string) (NamespaceSpec, bool) {
	if c.src == nil {
		return nil, false
	}
	for i, r := range c.src.raw.Namespace {
		if r.Name == name && c.src.tables[i] != nil {
			return c.src.tables[i], true
		}
	}
	return nil, false
}

var (
	// ErrNamespaceExists is CheckNamespace's error for a name the config has.
	ErrNamespaceExists = errors.New("namespace exists")
	// ErrInvalidNamespace wraps the validation errors of CheckNamespace.
	ErrInvalidNamespace = errors.New("invalid namespace")
)

// importAt places the errors of an imported namespace: paths inside it become
// JSON paths in the import document; the others (a running part the new one
// collides with reports its own position in the message) are dropped, as the
// running config was valid.
type importAt struct {
	file   string // the document's name, e.g. "ns.json"
	prefix string // "namespace.N"
	errs   PathErrors
}

func (a *importAt) add(path, msg string) {
	if path != a.prefix && !strings.HasPrefix(path, a.prefix+".") {
		return // not the import's
	}
	a.errs = append(a.errs, PathError{File: a.file, Path: jsonPath(strings.TrimPrefix(strings.TrimPrefix(path, a.prefix), ".")), Msg: msg})
}

// PathError is one problem of a JSON document (an imported namespace) at a JSON
// path, e.g. "ns.json: $.config.nic[0].addresses: bad address".
type PathError struct {
	File, Path, Msg string
}

func (e PathError) Error() string { return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg) }

// PathErrors is every problem found in an imported namespace.
type PathErrors []PathError

func (es PathErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// jsonPath turns "nic.1.addresses" into "$.config.nic[1].addresses".
func jsonPath(p string) string {
	var b strings.Builder
	b.WriteString("$.config")
	if p == "" {
		return b.String()
	}
	for _, seg := range strings.Split(p, ".") {
		if _, err := strconv.Atoi(seg); err == nil {
			fmt.Fprintf(&b, "[%s]", seg)
		} else {
			b.WriteString("." + seg)
		}
	}
	return b.String()
}

// CheckNamespace checks a namespace given at run time (an import) exactly as a
// [[namespace]] table appended to the file c came from would be checked: its keys,
// values, switches, MACs and addresses against everything c runs. file names the
// document in errors, whose positions are JSON paths ("$.config.nic[0].addresses").
// A name c already has is ErrNamespaceExists; other problems wrap
// ErrInvalidNamespace. It returns the namespace and c with it added (c itself is
// unchanged).
func CheckNamespace(c *Config, file string, spec NamespaceSpec) (Namespace, *Config, error) {
	if c == nil || c.src == nil {
		return Namespace{}, nil, errors.New("the running config was not parsed from a file; cannot check an import against it")
	}
	spec, err := tomlValues(spec)
	if err != nil {
		return Namespace{}, nil, fmt.Errorf("%w: %s: $.config: %v", ErrInvalidNamespace, file, err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"namespace": []map[string]any{spec}}); err != nil {
		return Namespace{}, nil, fmt.Errorf("%w: %s: $.config: %v", ErrInvalidNamespace, file, err)
	}
	var doc struct {
		Namespace []rawNamespace `toml:"namespace"`
	}
	md, err := toml.Decode(buf.String(), &doc)
	if err != nil {
		return Namespace{}, nil, fmt.Errorf("%w: %s: $.config: %v", ErrInvalidNamespace, file, err)
	}
	rn := doc.Namespace[0]
	for _, n := range c.Namespaces {
		if n.Name == rn.Name && rn.Name != "" {
			return Namespace{}, nil, fmt.Errorf("%w: %s: $.config.name: namespace %q is already running", ErrNamespaceExists, file, rn.Name)
		}
	}
	var errs PathErrors
	for _, k := range md.Undecoded() {
		errs = append(errs, PathError{File: file, Path: "$.config." + strings.Join(k[1:], "."), Msg: fmt.Sprintf("unknown key %q", strings.Join(k[1:], "."))})
	}
	raw := c.src.raw
	raw.Namespace = append(slices.Clone(raw.Namespace), rn)
	idx := len(raw.Namespace) - 1
	v := &validator{file: c.src.file, loc: c.src.loc, imp: &importAt{file: file, prefix: fmt.Sprintf("namespace.%d", idx)}}
	out := v.build(&raw)
	errs = append(errs, v.imp.errs...)
	if len(errs) > 0 {
		return Namespace{}, nil, fmt.Errorf("%w:\n%w", ErrInvalidNamespace, errs)
	}
	src := *c.src
	src.raw = raw
	src.tables = append(slices.Clone(c.src.tables), spec)
	out.src = &src
	return out.Namespaces[idx], out, nil
}

// Imported reports whether namespace name of c was added by CheckNamespace (an
// import) rather than read from the file.
func (c *Config) Imported(name string) bool {
	if c == nil || c.src == nil {
		return false
	}
	for i, r := range c.src.raw.Namespace {
		if r.Name == name {
			return i >= c.src.nFile
		}
	}
	return false
}

// tomlValues converts a JSON-decoded value to what the TOML encoder writes as the
// file would have it: whole numbers become integers, arrays of objects arrays of
// tables.
func tomlValues(m map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, x := range m {
		y, err := tomlValue(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = y
	}
	return out, nil
}

func tomlValue(x any) (any, error) {
	switch x := x.(type) {
	case nil:
		return nil, errors.New("null is not a TOML value")
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case map[string]any:
		return tomlValues(x)
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			m, err := tomlValues(e)
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	case []any:
		allMaps := len(x) > 0
		out := make([]any, len(x))
		for i, e := range x {
			y, err := tomlValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = y
			_, isMap := y.(map[string]any)
			allMaps = allMaps && isMap
		}
		if allMaps {
			ms := make([]map[string]any, len(out))
			for i, e := range out {
				ms[i] = e.(map[string]any)
			}
			return ms, nil
		}
		return out, nil
	}
	return x, nil
}
