package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS is the process's resident set size in bytes (VmRSS of /proc/self/status).
func RSS() (int64, error) { return rssOf("self") }

// RSSOf is process pid's resident set size in bytes (VmRSS of /proc/PID/status).
func RSSOf(pid int) (int64, error) { return rssOf(strconv.Itoa(pid)) }

func rssOf(proc string) (int64, error) {
	path := "/proc/" + proc + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in %s", path)
}
