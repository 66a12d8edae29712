package impair

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Distributions of the jitter.
const (
	Uniform = "uniform" // delay ± jitter, every value equally likely
	Normal  = "normal"  // delay + N(0, jitter²)
)

// Params is one direction's impairment. The zero value impairs nothing.
// Percentages are 0-100, as tc-netem takes them.
type Params struct {
	// Delay is added to every frame.
	Delay time.Duration `json:"delay,omitempty"`
	// Jitter spreads Delay: ±Jitter (uniform) or its standard deviation (normal).
	Jitter time.Duration `json:"jitter,omitempty"`
	// Distribution is Uniform (default) or Normal.
	Distribution string `json:"distribution,omitempty"`
	// Correlation (percent) ties each jitter draw to the previous one.
	Correlation float64 `json:"correlation,omitempty"`
	// Loss is the probability (percent) that a frame is dropped.
	Loss float64 `json:"loss,omitempty"`
	// GilbertElliott, when set, replaces Loss with a two-state loss model.
	GilbertElliott *GilbertElliott `json:"gilbert_elliott,omitempty"`
	// Rate (bits per second) limits the link: a frame occupies it for its length
	// (a superframe's whole length) over Rate. 0 means unlimited.
	Rate uint64 `json:"rate,omitempty"`
	// Limit bounds the frames waiting in the queue; beyond it frames are dropped.
	// 0 means DefaultLimit.
	Limit int `json:"limit,omitempty"`
	// Reorder is the probability (percent) that a frame skips Delay and jumps the
	// frames waiting, as netem's reorder does.
	Reorder float64 `json:"reorder,omitempty"`
	// Duplicate is the probability (percent) that a frame is sent twice.
	Duplicate float64 `json:"duplicate,omitempty"`
	// Corrupt is the probability (percent) that one bit of a frame is flipped.
	Corrupt float64 `json:"corrupt,omitempty"`
	// Seed seeds the random draws; 0 picks one from the clock. The same seed and the
	// same frames give the same drops, delays and corruptions.
	Seed uint64 `json:"seed,omitempty"`
}

// GilbertElliott is the two-state loss model (netem's "loss gemodel"): a good and a
// bad state, each with its own loss probability. All fields are percentages.
type GilbertElliott struct {
	// P is the probability of moving from good to bad, per frame.
	P float64 `json:"p"`
	// R is the probability of moving from bad to good, per frame.
	R float64 `json:"r"`
	// Bad is the loss probability in the bad state (netem's 1-h); default 100.
	Bad float64 `json:"bad"`
	// Good is the loss probability in the good state (netem's 1-k); default 0.
	Good float64 `json:"good"`
}

// Limits on parameters.
const (
	DefaultLimit = 1000   // frames waiting per direction, as netem's default
	MaxLimit     = 100000 // the largest Limit accepted
	// MaxQueueBytes bounds the bytes waiting per direction whatever Limit says (a
	// superframe is up to 64 KiB); beyond it frames are dropped as over the limit.
	MaxQueueBytes = 64 << 20
	MaxDelay      = time.Minute   // the largest Delay or Jitter accepted
	MinRate       = 8000          // 1 kB/s: the smallest Rate accepted
	maxRate       = 1000000000000 // 1 Tbit/s
)

// IsZero reports whether p impairs nothing.
func (p *Params) IsZero() bool {
	return p.Delay == 0 && p.Jitter == 0 && p.Loss == 0 && p.GilbertElliott == nil && p.Rate == 0 &&
		p.Reorder == 0 && p.Duplicate == 0 && p.Corrupt == 0
}

// Validate reports the first bad field, naming it as the config key.
func (p *Params) Validate() error {
	if p.Delay < 0 || p.Delay > MaxDelay {
		return fmt.Errorf("delay %v out of range 0-%v", p.Delay, MaxDelay)
	}
	if p.Jitter < 0 || p.Jitter > MaxDelay {
		return fmt.Errorf("jitter %v out of range 0-%v", p.Jitter, MaxDelay)
	}
	switch p.Distribution {
	case "", Uniform, Normal:
	default:
		return fmt.Errorf("distribution %q: want uniform or normal", p.Distribution)
	}
	pct := []struct {
		name string
		v    float64
	}{{"correlation", p.Correlation}, {"loss", p.Loss}, {"reorder", p.Reorder}, {"duplicate", p.Duplicate}, {"corrupt", p.Corrupt}}
	if ge := p.GilbertElliott; ge != nil {
		pct = append(pct, []struct {
			name string
			v    float64
		}{{"gilbert_elliott.p", ge.P}, {"gilbert_elliott.r", ge.R}, {"gilbert_elliott.bad", ge.Bad}, {"gilbert_elliott.good", ge.Good}}...)
		if p.Loss != 0 {
			return errors.New("loss and gilbert_elliott are exclusive")
		}
	}
	for _, x := range pct {
		if !(x.v >= 0 && x.v <= 100) {
			return fmt.Errorf("%s %v: want a percentage 0-100", x.name, x.v)
		}
	}
	if p.Rate != 0 && (p.Rate < MinRate || p.Rate > maxRate) {
		return fmt.Errorf("rate %d bit/s out of range %d bit/s - 1 Tbit/s", p.Rate, MinRate)
	}
	if p.Limit < 0 || p.Limit > MaxLimit {
		return fmt.Errorf("limit %d out of range 1-%d", p.Limit, MaxLimit)
	}
	if p.Reorder != 0 && p.Delay == 0 {
		return errors.New("reorder needs a delay (reordered frames skip it)")
	}
	return nil
}

// ParseRate parses a rate as tc writes it: a number with bit, kbit, mbit or gbit
// (any case, SI multiples, "/s" allowed), e.g. "100mbit" or "1Gbit/s".
func ParseRate(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/s")
	mult := 0.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bit", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if mult == 0 || err != nil || !(v > 0) {
		return 0, fmt.Errorf("rate %q: want a number with bit, kbit, mbit or gbit, e.g. \"100mbit\"", s)
	}
	r := v * mult
	if r < MinRate || r > maxRate {
		return 0, fmt.Errorf("rate %q out of range 8kbit-1000gbit", s)
	}
	return uint64(r), nil
}

// FormatRate writes a rate in bit/s the way ParseRate reads it.
func FormatRate(r uint64) string {
	switch {
	case r >= 1e9 && r%1e6 == 0:
		return strconv.FormatFloat(float64(r)/1e9, 'f', -1, 64) + "gbit"
	case r >= 1e6 && r%1e3 == 0:
		return strconv.FormatFloat(float64(r)/1e6, 'f', -1, 64) + "mbit"
	case r >= 1e3:
		return strconv.FormatFloat(float64(r)/1e3, 'f', -1, 64) + "kbit"
	}
	return strconv.FormatUint(r, 10) + "bit"
}

// String summarises p in tc-netem's words, "" when p impairs nothing.
func (p *Params) String() string {
	var b []string
	if p.Delay != 0 || p.Jitter != 0 {
		s := "delay " + p.Delay.String()
		if p.Jitter != 0 {
			s += " " + p.Jitter.String()
			if p.Correlation != 0 {
				s += fmt.Sprintf(" %g%%", p.Correlation)
			}
			if p.Distribution == Normal {
				s += " distribution normal"
			}
		}
		b = append(b, s)
	}
	if p.Loss != 0 {
		b = append(b, fmt.Sprintf("loss %g%%", p.Loss))
	}
	if ge := p.GilbertElliott; ge != nil {
		b = append(b, fmt.Sprintf("loss gemodel %g%% %g%% %g%% %g%%", ge.P, ge.R, ge.Bad, ge.Good))
	}
	for _, x := range []struct {
		name string
		v    float64
	}{{"reorder", p.Reorder}, {"duplicate", p.Duplicate}, {"corrupt", p.Corrupt}} {
		if x.v != 0 {
			b = append(b, fmt.Sprintf("%s %g%%", x.name, x.v))
		}
	}
	if p.Rate != 0 {
		b = append(b, "rate "+FormatRate(p.Rate))
	}
	if p.Limit != 0 {
		b = append(b, fmt.Sprintf("limit %d", p.Limit))
	}
	if p.Seed != 0 {
		b = append(b, fmt.Sprintf("seed %d", p.Seed))
	}
	return strings.Join(b, " ")
}
