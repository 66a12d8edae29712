package l2switch

import "github.com/vnetd/vnetd/frame"

// softwareOffload segments or checksums buf for a port that cannot take its offloads,
// yielding plain frames, and returns how many it yielded, or -1 when it could not.
// It does not take buf.
var softwareOffload = func(buf *frame.Buf, mtu int, yield func(*frame.Buf) bool) int {
	return -1
}
