package integration

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawEtherType is the EtherType of the test frames raw sockets send and receive (IEEE
// 802 local experimental 1): no stack in a test netns answers or forwards it.
const rawEtherType = 0x88b5

// rawFrame is a broadcast test frame from src carrying payload, with an 802.1Q tag for
// vlan when vlan is not 0.
func rawFrame(src net.HardwareAddr, vlan uint16, payload string) []byte {
	f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...)
	if vlan != 0 {
		f = binary.BigEndian.AppendUint16(f, unix.ETH_P_8021Q)
		f = binary.BigEndian.AppendUint16(f, vlan)
	}
	f = binary.BigEndian.AppendUint16(f, rawEtherType)
	return append(f, payload...)
}

// rawSocket is an AF_PACKET socket bound to one interface of a netns, with
// PACKET_AUXDATA so a VLAN tag the kernel took out of a received frame is reported. It
// is bound for every protocol (ETH_P_ALL): the kernel clears a VLAN tag no VLAN device
// claims before it delivers to sockets bound to one EtherType, so only these see it.
type rawSocket struct {
	fd      int
	ifindex int
}

func openRawSocket(t *testing.T, ns, ifname string) *rawSocket {
	t.Helper()
	s := &rawSocket{fd: -1}
	err := doInNetns(t, ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(hostifHtons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		s.fd = fd
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		s.ifindex = ifc.Index
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: hostifHtons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		t.Fatalf("raw socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *rawSocket) send(t *testing.T, f []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: s.ifindex, Protocol: hostifHtons(rawEtherType), Halen: 6}
	if err := unix.Sendto(s.fd, f, 0, sa); err != nil {
		t.Fatalf("send raw frame: %v", err)
	}
}

// rawReceived is a frame a rawSocket read: its bytes as the kernel delivered them
// (without the VLAN tag it took out) and that tag's VLAN ID, 0 when there was none.
type rawReceived struct {
	data []byte
	vlan uint16
}

// receive collects the test frames (rawEtherType) the socket reads within d.
func (s *rawSocket) receive(d time.Duration) []rawReceived {
	var got []rawReceived
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if err != nil {
			continue // SO_RCVTIMEO
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // the socket's own interface sending
		}
		if n < 14 || binary.BigEndian.Uint16(buf[12:14]) != rawEtherType {
			continue
		}
		r := rawReceived{data: bytes.Clone(buf[:n])}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
				if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
					r.vlan = aux.Vlan_tci & 0xfff
				}
			}
		}
		got = append(got, r)
	}
	return got
}

// rawPayloads returns the payloads of the frames, keyed by the VLAN they arrived
// tagged with (0: untagged), each cut to want's length (a short frame may arrive
// padded).
func rawPayloads(frames []rawReceived, want int) map[uint16][]string {
	m := map[uint16][]string{}
	for _, f := range frames {
		if len(f.data) < 14+want {
			continue
		}
		m[f.vlan] = append(m[f.vlan], string(f.data[14:14+want]))
	}
	return m
}
