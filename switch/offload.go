package l2switch

import (
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/offload"
)

// softwareOffload segments or checksums buf for a port that cannot take its offloads,
// yielding plain frames, and returns how many it yielded, or -1 when it could not
// (malformed superframe). It does not take buf. This is the slow edge of the data path:
// it runs only towards ports without the offload, and every frame it makes is counted.
func softwareOffload(buf *frame.Buf, mtu int, yield func(*frame.Buf) bool) int {
	f := frame.Frame{Buf: buf.B[buf.Off:], N: buf.N, Meta: buf.Meta}
	n, err := offload.Segment(&f, mtu, yield)
	if err != nil {
		return -1
	}
	return n
}
