package control

import (
	"bytes"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	l2switch "github.com/vnetd/vnetd/switch"
)

// pcapngOfThreePorts writes a pcapng of switch sw0 with ports a, b, c: one ICMP frame
// from each port and one from port d, added after the capture started. It returns the
// file and the ports in frame order.
func pcapngOfThreePorts(t *testing.T) ([]byte, []string) {
	t.Helper()
	sw := l2switch.New(l2switch.Config{Name: "sw0", AgeEvery: -1})
	t.Cleanup(func() { sw.Close() })
	for _, n := range []string{"a", "b", "c"} {
		near, far := frametest.NewPair(frametest.PairOptions{NameA: n})
		t.Cleanup(func() { near.Close(); far.Close() })
		if err := sw.AddPort(near, l2switch.PortConfig{Name: n}); err != nil {
			t.Fatalf("sw.AddPort(%q): %v", n, err)
		}
	}
	cr, err := parseCaptureQuery(url.Values{"filter": {"icmp"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	cw, err := newCaptureWriter(rec, sw, cr)
	if err != nil {
		t.Fatalf("newCaptureWriter: %v", err)
	}
	order := []string{"b", "a", "d", "c"}
	for i, port := range order {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: net.IPv4(10, 0, 0, byte(10+i)).To4(), DstIP: net.IPv4(10, 0, 0, 1).To4()}
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xff}, EthernetType: layers.EthernetTypeIPv4},
			ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: uint16(i)})
		if err != nil {
			t.Fatal(err)
		}
		b := frame.GetBuf(len(buf.Bytes()))
		b.N = copy(b.B, buf.Bytes())
		if err := cw.write(l2switch.CapturedFrame{Time: time.Unix(1700000000, int64(i)*1000), Port: port, Ingress: true, Buf: b}); err != nil {
			t.Fatalf("write frame %d: %v", i, err)
		}
		b.Release()
	}
	cw.flush()
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-pcapng" {
		t.Errorf("Content-Type = %q, want application/x-pcapng", ct)
	}
	return rec.Body.Bytes(), order
}

// TestPcapNGReadBack reads the file with gopacket's NgReader: one interface block per
// port, named for it, and every frame on its port's interface.
func TestPcapNGReadBack(t *testing.T) {
	file, order := pcapngOfThreePorts(t)
	r, err := pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("NewNgReader: %v", err)
	}
	var got []string
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("frame %d: Interface(%d): %v", len(got), ci.InterfaceIndex, err)
		}
		if pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default); pkt.Layer(layers.LayerTypeICMPv4) == nil {
			t.Errorf("frame %d does not decode as ICMP", len(got))
		}
		if intf.Filter != "icmp" || intf.LinkType != layers.LinkTypeEthernet {
			t.Errorf("interface %q: filter %q, link %v; want icmp, Ethernet", intf.Name, intf.Filter, intf.LinkType)
		}
		got = append(got, intf.Name)
	}
	if !slices.Equal(got, order) {
		t.Errorf("frames' interfaces = %q, want %q", got, order)
	}
	var names []string
	for i := 0; i < r.NInterfaces(); i++ {
		intf, _ := r.Interface(i)
		names = append(names, intf.Name)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(names, want) {
		t.Errorf("interface blocks = %q, want %q (the switch's ports, then d when its frame came)", names, want)
	}
}

// TestPcapNGTshark reads the file with Wireshark's tshark, which names each frame's
// interface.
func TestPcapNGTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("VNETD_INTEGRATION") != "" {
			t.Fatalf("tshark not installed (test.sh installs it as root): %v", err)
		}
		t.Skip("tshark not installed")
	}
	file, order := pcapngOfThreePorts(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sw0.pcapng")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "ip.src", "-e", "icmp.type")
	// tshark as root warns about running as root and wants a config dir: give it a home.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "WIRESHARK_RUN_FROM_BUILD_DIRECTORY=")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("tshark -r: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(order) {
		t.Fatalf("tshark read %d frames, want %d:\n%s", len(lines), len(order), out)
	}
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[0] != order[i] || f[1] != net.IPv4(10, 0, 0, byte(10+i)).String() || f[2] != "8" {
			t.Errorf("tshark frame %d = %q, want interface %s, 10.0.0.%d, ICMP echo", i, l, order[i], 10+i)
		}
	}
}

func TestCaptureQuery(t *testing.T) {
	cases := []struct {
		q    string
		want string // "" = accepted; else a substring of the error
	}{
		{"", ""},
		{"filter=tcp+port+80&format=pcap&count=5", ""},
		{"ring=30&filter=icmp", ""},
		{"filter=tcp+port+http", "column 10"},
		{"filter=host+10.0.0.300", "column 6"},
		{"format=erf", "bad format"},
		{"ring=0", "bad ring"},
		{"ring=86401", "bad ring"},
		{"count=-1", "bad count"},
	}
	for _, c := range cases {
		q, _ := url.ParseQuery(c.q)
		cr, err := parseCaptureQuery(q)
		if c.want == "" {
			if err != nil {
				t.Errorf("parseCaptureQuery(%q): %v", c.q, err)
			} else if cr.format == "" {
				t.Errorf("parseCaptureQuery(%q): no format", c.q)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseCaptureQuery(%q) = %v, want an error containing %q", c.q, err, c.want)
		}
	}
	if cr, _ := parseCaptureQuery(url.Values{}); cr.format != FormatPcapNG {
		t.Errorf("default format = %q, want pcapng", cr.format)
	}
}

func TestCaptureFilterEndpoint(t *testing.T) {
	for _, c := range []struct {
		filter string
		code   int
		want   string
	}{
		{"tcp port 80", 200, `"instructions":`},
		{"tcp port http", 400, "column 10"},
	} {
		rec := httptest.NewRecorder()
		serveCaptureFilter(rec, httptest.NewRequest("GET", "/v1/capture-filter?filter="+url.QueryEscape(c.filter), nil))
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("GET /v1/capture-filter?filter=%q = %d %s, want %d containing %q", c.filter, rec.Code, rec.Body, c.code, c.want)
		}
	}
}
