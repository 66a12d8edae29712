package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/config"
)

// CheckResult is the outcome of one [[expect]].
type CheckResult struct {
	From    string  `json:"from"`
	To      string  `json:"to"`      // "ADDR:PORT" (TCP connect) or "ping ADDR"
	Want    bool    `json:"want"`    // the reach the config expects
	Reached bool    `json:"reached"` // what happened
	Pass    bool    `json:"pass"`    // Want == Reached
	Detail  string  `json:"detail"`  // connected, replied, refused, timeout or the error
	Ms      float64 `json:"ms"`      // how long the attempt took
}

// maxParallelChecks bounds the checks running at once.
const maxParallelChecks = 64

// Check runs every [[expect]] of the running config in parallel and returns their
// results in file order.
func (d *Daemon) Check(ctx context.Context) []CheckResult {
	d.mu.Lock()
	var exps []config.Expect
	if d.cfg != nil {
		exps = d.cfg.Expects
	}
	d.mu.Unlock()
	out := make([]CheckResult, len(exps))
	sem := make(chan struct{}, maxParallelChecks)
	var wg sync.WaitGroup
	for i, e := range exps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = d.check(ctx, e)
		}()
	}
	wg.Wait()
	return out
}

func (d *Daemon) check(ctx context.Context, e config.Expect) CheckResult {
	r := CheckResult{From: e.From, To: e.Target(), Want: e.Reach}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	t0 := time.Now()
	ns, err := d.Namespace(e.From)
	switch {
	case err != nil:
	case e.Ping():
		_, err = ns.Ping(ctx, e.To.Addr(), 1, make([]byte, 56))
		r.Detail = "replied"
	default:
		c, derr := ns.Dial(ctx, "tcp", e.To.String())
		if err = derr; err == nil {
			c.Close()
		}
		r.Detail = "connected"
	}
	r.Ms = float64(time.Since(t0).Microseconds()) / 1000
	switch {
	case err == nil:
		r.Reached = true
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection was refused"): // gVisor's words
		r.Detail = "refused"
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		r.Detail = "timeout"
	default:
		r.Detail = err.Error()
	}
	r.Pass = r.Reached == r.Want
	return r
}
