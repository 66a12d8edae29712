package nsstack

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// gVisor sizes a stack's TCP dispatcher (one processor goroutine each) from
// runtime.GOMAXPROCS(0) when the TCP protocol is created, and offers no option for it.
// So newStack lowers GOMAXPROCS to the namespace's TCPProcessors while it builds the
// stack. Each change of GOMAXPROCS stops the world; doing it twice per namespace took
// about 100 µs, a quarter of a namespace's creation (1 s of CPU for 10,000). So the
// lowered setting is kept while namespaces are being created, and put back procsHold
// after the last one: a burst of 10,000 costs two changes, and a single New holds the
// program at the lower setting for procsHold instead of some microseconds.
//
// A program that changes GOMAXPROCS meanwhile keeps its setting: withProcs and
// restoreProcs notice it is no longer the one they set. (An upstream option for the
// processor count would remove all this: see README, known issues.)
const procsHold = 2 * time.Millisecond

var procs struct {
	mu      sync.Mutex
	lowered bool        // guarded by mu: GOMAXPROCS is set by us, restore pending
	set     int         // guarded by mu: what we set it to
	prev    int         // guarded by mu: the setting to restore
	restore *time.Timer // guarded by mu: fires restoreProcs
}

// defaultProcs is GOMAXPROCS as the program started; see restoreProcs.
var defaultProcs = runtime.GOMAXPROCS(0)

// withProcs runs f with GOMAXPROCS at most n, one caller at a time.
func withProcs(n int, f func()) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	cur := runtime.GOMAXPROCS(0)
	if procs.lowered && cur != procs.set {
		procs.lowered = false // the program changed it meanwhile: its setting rules
	}
	host := cur
	if procs.lowered {
		host = procs.prev
	}
	if want := min(host, n); want != cur {
		if !procs.lowered {
			procs.prev, procs.lowered = host, true
		}
		runtime.GOMAXPROCS(want)
		procs.set = want
	}
	f()
	if procs.lowered {
		if procs.restore == nil {
			procs.restore = time.AfterFunc(procsHold, restoreProcs)
		} else {
			procs.restore.Reset(procsHold)
		}
	}
}

// restoreProcs puts GOMAXPROCS back. When the program runs with the runtime's default
// (no GOMAXPROCS environment variable, setting unchanged since start), it restores
// the default with its automatic updates (Go 1.25+ follows cgroup CPU limits), which
// setting a number would switch off for good.
func restoreProcs() {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if !procs.lowered {
		return
	}
	procs.lowered = false
	if runtime.GOMAXPROCS(0) != procs.set {
		return // the program changed it meanwhile: leave its setting
	}
	if procs.prev == defaultProcs && os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
	} else {
		runtime.GOMAXPROCS(procs.prev)
	}
}
