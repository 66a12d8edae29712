package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// TestWebPage serves the topology page for the default lab and checks the page, the
// topology JSON behind it and that the listener refuses changes; then headless
// Chromium loads the page and must draw every node of the lab (and a screenshot of it
// is written under the test's temp dir).
func TestWebPage(t *testing.T) {
	c, err := config.Parse("config.toml.example", vnetd.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	c.Forwards = nil // fixed host ports may be taken
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := daemon.New(daemon.Options{Logger: log})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply(default lab) = %v", err)
	}
	ws, err := ServeWeb("127.0.0.1:0", d, log)
	if err != nil {
		t.Fatalf("ServeWeb = %v", err)
	}
	defer ws.Close()
	base := "http://" + ws.Addr().String()

	var topo daemon.Topology
	resp, err := http.Get(base + "/v1/topology")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&topo)
	resp.Body.Close()
	want := []string{"switch:lan0", "switch:lan1", "ns:alpha", "ns:beta", "ns:gamma", "router:r1"}
	ids := map[string]bool{}
	for _, n := range topo.Nodes {
		ids[n.ID] = true
	}
	for _, w := range want {
		if !ids[w] {
			t.Errorf("GET /v1/topology lacks node %s: %+v", w, topo.Nodes)
		}
	}
	if len(topo.Links) < 5 {
		t.Errorf("GET /v1/topology has %d links, want the 5 switch ports at least", len(topo.Links))
	}
	if agg := d.Topology(2); !agg.Aggregated || len(agg.Nodes) >= len(topo.Nodes) {
		t.Errorf("Topology(2) = %d nodes aggregated=%v; want namespaces folded", len(agg.Nodes), agg.Aggregated)
	}
	if dot := topo.DOT(); !strings.Contains(dot, `"switch:lan0" -- "ns:alpha"`) {
		t.Errorf("DOT lacks the lan0--alpha link:\n%s", dot)
	}
	if m := topo.Mermaid(); !strings.HasPrefix(m, "flowchart LR") || !strings.Contains(m, "alpha.eth0") {
		t.Errorf("Mermaid output:\n%s", m)
	}
	resp, err = http.Post(base+"/v1/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/reload on the web listener = %d, want 405", resp.StatusCode)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("VNETD_INTEGRATION") != "" {
			t.Fatalf("chromium not installed (test.sh installs it as root): %v", err)
		}
		t.Skip("chromium not installed; the page itself was not loaded in a browser")
	}
	dir := t.TempDir()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--virtual-time-budget=4000", "--window-size=1200,800"}
	out, err := exec.Command(chromium, append(args, "--dump-dom", base+"/")...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	dom := string(out)
	for _, w := range want {
		if !strings.Contains(dom, `data-node="`+w+`"`) {
			t.Errorf("the page drew no node %s (DOM %d bytes)", w, len(dom))
		}
	}
	if !strings.Contains(dom, `data-link="lan0/alpha.eth0"`) || !strings.Contains(dom, "nodes,") {
		t.Errorf("the page drew no lan0/alpha.eth0 link or status line")
	}
	shot := filepath.Join(dir, "topology.png")
	if b, err := exec.Command(chromium, append(args, "--screenshot="+shot, base+"/")...).CombinedOutput(); err != nil {
		t.Errorf("chromium --screenshot: %v: %s", err, b)
	} else if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	if p := os.Getenv("VNETD_WEB_SCREENSHOT"); p != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(p, b, 0o644)
	}

	// While alpha pings gamma (every 5 ms, at most 3,000 pings or until the page is
	// read), the page's rate on alpha's link moves: it draws frames/s above zero.
	alpha, err := d.Namespace("alpha")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		for seq := 1; seq <= 3000; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			alpha.Ping(ctx, netip.MustParseAddr("10.0.1.10"), seq, []byte("rates"))
			cancel()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond) // the first pings resolve their neighbours
	out, err = exec.Command(chromium, append(args, "--dump-dom", base+"/")...).Output()
	close(stop)
	<-pinged
	if err != nil {
		t.Fatalf("chromium --dump-dom under traffic: %v", err)
	}
	m := regexp.MustCompile(`data-link="lan0/alpha.eth0"[^>]*data-fps="([0-9.]+)"`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("the page under traffic has no rate on lan0/alpha.eth0")
	}
	if fps, _ := strconv.ParseFloat(m[1], 64); fps <= 0 {
		t.Errorf("the page shows %s frames/s on lan0/alpha.eth0 while alpha pings gamma, want > 0", m[1])
	}
}
