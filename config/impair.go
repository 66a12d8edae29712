package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vnetd/vnetd/impair"
)

// Impair is one [[impair]]: link impairment on a switch port or on one end of a
// pass-through pair. Exactly one of (Switch, Port) and (Namespace, NIC) is set.
type Impair struct {
	// Switch and Port name a switch port, e.g. "lan" and "alpha.eth0". The port may
	// come and go (a VM's socket port): it is impaired whenever it is attached.
	Switch, Port string
	// Namespace and NIC name one end of a pass-through pair.
	Namespace, NIC string
	// Direction is the way impaired, seen from the port: impair.In (toward the
	// switch or the peer), impair.Out or impair.Both.
	Direction impair.Direction
	// Params are the impairment.
	Params impair.Params
}

// Target names what i impairs: "SWITCH/PORT" or "NAMESPACE:NIC".
func (i Impair) Target() string {
	if i.Switch != "" {
		return i.Switch + "/" + i.Port
	}
	return i.Namespace + ":" + i.NIC
}

// ImpairSpec is one [[impair]] as written: in the file, or in a control API request
// (vnetd impair). CheckImpair turns it into an Impair.
type ImpairSpec struct {
	Switch         string  `toml:"switch" json:"switch,omitempty"`
	Port           string  `toml:"port" json:"port,omitempty"`
	Namespace      string  `toml:"namespace" json:"namespace,omitempty"`
	NIC            string  `toml:"nic" json:"nic,omitempty"`
	Direction      string  `toml:"direction" json:"direction,omitempty"`
	Delay          string  `toml:"delay" json:"delay,omitempty"`
	Jitter         string  `toml:"jitter" json:"jitter,omitempty"`
	Distribution   string  `toml:"distribution" json:"distribution,omitempty"`
	Correlation    float64 `toml:"correlation" json:"correlation,omitempty"`
	Loss           float64 `toml:"loss" json:"loss,omitempty"`
	GilbertElliott *GESpec `toml:"gilbert_elliott" json:"gilbert_elliott,omitempty"`
	Rate           string  `toml:"rate" json:"rate,omitempty"`
	Limit          int     `toml:"limit" json:"limit,omitempty"`
	Reorder        float64 `toml:"reorder" json:"reorder,omitempty"`
	Duplicate      float64 `toml:"duplicate" json:"duplicate,omitempty"`
	Corrupt        float64 `toml:"corrupt" json:"corrupt,omitempty"`
	Seed           int64   `toml:"seed" json:"seed,omitempty"`
}

// GESpec is the gilbert_elliott table of an [[impair]]: percentages, Bad defaulting
// to 100.
type GESpec struct {
	P    float64  `toml:"p" json:"p"`
	R    float64  `toml:"r" json:"r"`
	Bad  *float64 `toml:"bad" json:"bad,omitempty"`
	Good float64  `toml:"good" json:"good,omitempty"`
}

// impair checks one [[impair]] at path p against c's switches and namespaces.
func (v *validator) impair(p string, s ImpairSpec, c *Config) Impair {
	im := Impair{Switch: s.Switch, Port: s.Port, Namespace: s.Namespace, NIC: s.NIC}
	switch {
	case s.Switch != "" && s.Namespace != "":
		v.errf(p, "impair names a switch port or a pair end (namespace, nic), not both")
	case s.Switch != "":
		found := false
		for _, sw := range c.Switches {
			found = found || sw.Name == s.Switch
		}
		if !found {
			v.errf(p+".switch", "switch %q is not defined", s.Switch)
		}
		if s.Port == "" {
			v.errf(p, "impair on switch %q needs a port", s.Switch)
		}
		if s.NIC != "" {
			v.errf(p+".nic", "nic goes with namespace (a pair end); a switch port is named by port")
		}
	case s.Namespace != "":
		if s.Port != "" {
			v.errf(p+".port", "port goes with switch; a pair end is named by namespace and nic")
		}
		var nic *NIC
		for i := range c.Namespaces {
			if c.Namespaces[i].Name == s.Namespace {
				for j := range c.Namespaces[i].NICs {
					if c.Namespaces[i].NICs[j].Name == s.NIC {
						nic = &c.Namespaces[i].NICs[j]
					}
				}
				if nic == nil {
					v.errf(p+".nic", "namespace %q has no nic %q", s.Namespace, s.NIC)
				}
			}
		}
		switch {
		case nic != nil && nic.PeerNamespace == "" && !nic.L3Leg():
			v.errf(p+".nic", "%s:%s is on switch %q: impair it as switch = %q, port = %q", s.Namespace, s.NIC, nic.Switch, nic.Switch, s.Namespace+"."+s.NIC)
		case nic == nil && !v.hasNamespace(c, s.Namespace):
			v.errf(p+".namespace", "namespace %q is not defined", s.Namespace)
		}
	default:
		v.errf(p, "impair needs switch and port, or namespace and nic")
	}
	var err error
	if im.Direction, err = impair.ParseDirection(s.Direction); err != nil {
		v.errf(p+".direction", "%v", err)
	}
	im.Params, err = impairParams(s, func(key, msg string) { v.errf(p+"."+key, "%s", msg) })
	if err != nil {
		v.errf(p, "%v", err)
	}
	return im
}

func (v *validator) hasNamespace(c *Config, name string) bool {
	for _, ns := range c.Namespaces {
		if ns.Name == name {
			return true
		}
	}
	return false
}

// impairParams turns s's parameters into impair.Params: field errors go to bad
// (key, message), the checks across fields come back as the error.
func impairParams(s ImpairSpec, bad func(key, msg string)) (impair.Params, error) {
	pr := impair.Params{Distribution: s.Distribution, Correlation: s.Correlation, Loss: s.Loss, Limit: s.Limit,
		Reorder: s.Reorder, Duplicate: s.Duplicate, Corrupt: s.Corrupt}
	dur := func(key, str string) time.Duration {
		if str == "" {
			return 0
		}
		d, err := time.ParseDuration(str)
		if err != nil || d < 0 || d > impair.MaxDelay {
			bad(key, fmt.Sprintf("%s %q: want a duration 0-%v such as \"20ms\"", key, str, impair.MaxDelay))
			return 0
		}
		return d
	}
	pr.Delay = dur("delay", s.Delay)
	pr.Jitter = dur("jitter", s.Jitter)
	if s.Rate != "" {
		r, err := impair.ParseRate(s.Rate)
		if err != nil {
			bad("rate", err.Error())
		}
		pr.Rate = r
	}
	if s.Seed < 0 {
		bad("seed", fmt.Sprintf("seed %d must not be negative", s.Seed))
	}
	pr.Seed = uint64(max(s.Seed, 0))
	if g := s.GilbertElliott; g != nil {
		pr.GilbertElliott = &impair.GilbertElliott{P: g.P, R: g.R, Bad: 100, Good: g.Good}
		if g.Bad != nil {
			pr.GilbertElliott.Bad = *g.Bad
		}
	}
	return pr, pr.Validate()
}

// CheckImpair checks an impairment given at run time as an [[impair]] in the file c
// came from would be checked. Errors name the key, without a file position.
func CheckImpair(c *Config, s ImpairSpec) (Impair, error) {
	v := &validator{file: "impair", loc: newLocator(nil)}
	im := v.impair("impair", s, c)
	if len(v.errs) > 0 {
		msgs := make([]string, len(v.errs))
		for i, e := range v.errs {
			msgs[i] = e.Msg
		}
		return Impair{}, errors.New(strings.Join(msgs, "; "))
	}
	return im, nil
}

// impairs checks every [[impair]]: no two may impair the same direction of one port.
func (v *validator) impairs(raw []ImpairSpec, c *Config) {
	seen := map[string]impair.Direction{}
	for i, s := range raw {
		p := fmt.Sprintf("impair.%d", i)
		im := v.impair(p, s, c)
		if d := seen[im.Target()]; d&im.Direction != 0 {
			v.errf(p, "%s is already impaired in that direction by an earlier [[impair]]", im.Target())
		}
		seen[im.Target()] |= im.Direction
		c.Impairs = append(c.Impairs, im)
	}
}
