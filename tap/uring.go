package tap

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
	"github.com/vnetd/vnetd/vnethdr"
)

// uring submits a batch of TAP writes with one io_uring_enter instead of one writev
// per frame. The TAP's descriptor is non-blocking, so every write completes (or fails
// with EAGAIN) inside the submitting call and the batch needs no completion waiting.
// A uring is used by one writer at a time (TAP.wlock).
type uring struct {
	fd      int
	entries uint32
	ring    []byte // the SQ and CQ rings (one mapping: IORING_FEAT_SINGLE_MMAP)
	sqes    []byte // the submission entries

	sqHead, sqTail, cqHead, cqTail *uint32
	sqMask, cqMask                 uint32
	sqArray                        unsafe.Pointer // uint32[entries]
	cqes                           unsafe.Pointer // struct io_uring_cqe[cq entries]

	hdrs  []byte // a virtio-net header per entry
	batch gather.Batch
}

const (
	uringEntries = 64

	ioringOffSQRing       = 0
	ioringOffSQEs         = 0x10000000
	ioringFeatSingleMmap  = 1 << 0
	ioringEnterGetEvents  = 1 << 0
	ioringOpWritev        = 2
	sqeSize               = 64
	cqeSize               = 16
	uringParamsSize       = 120
	sqOffHead, sqOffTail  = 40, 44 // offsets of io_sqring_offsets fields in io_uring_params
	sqOffMask, sqOffArray = 48, 64
	cqOffHead, cqOffTail  = 80, 84
	cqOffMask, cqOffCQEs  = 88, 100
)

// newURing sets up a ring for batches of writes, or fails when the kernel has no
// io_uring or forbids it (io_uring_disabled, seccomp); the caller then uses writev.
func newURing() (*uring, error) {
	var p [uringParamsSize]byte
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uringEntries, uintptr(unsafe.Pointer(&p[0])), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	u := &uring{fd: int(fd)}
	ok := false
	defer func() {
		if !ok {
			u.close()
		}
	}()
	le := binary.LittleEndian
	sqEntries, cqEntries := le.Uint32(p[0:]), le.Uint32(p[4:])
	if le.Uint32(p[20:])&ioringFeatSingleMmap == 0 {
		return nil, fmt.Errorf("io_uring: kernel without IORING_FEAT_SINGLE_MMAP")
	}
	ringSize := max(le.Uint32(p[sqOffArray:])+sqEntries*4, le.Uint32(p[cqOffCQEs:])+cqEntries*cqeSize)
	ring, err := unix.Mmap(u.fd, ioringOffSQRing, int(ringSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("io_uring: map rings: %w", err)
	}
	u.ring = ring
	sqes, err := unix.Mmap(u.fd, ioringOffSQEs, int(sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("io_uring: map entries: %w", err)
	}
	u.sqes = sqes
	at := func(off int) unsafe.Pointer { return unsafe.Pointer(&ring[le.Uint32(p[off:])]) }
	u.sqHead, u.sqTail = (*uint32)(at(sqOffHead)), (*uint32)(at(sqOffTail))
	u.cqHead, u.cqTail = (*uint32)(at(cqOffHead)), (*uint32)(at(cqOffTail))
	u.sqMask, u.cqMask = *(*uint32)(at(sqOffMask)), *(*uint32)(at(cqOffMask))
	u.sqArray, u.cqes = at(sqOffArray), at(cqOffCQEs)
	u.entries = min(sqEntries, cqEntries)
	u.hdrs = make([]byte, int(u.entries)*vnetHdrLen)
	ok = true
	return u, nil
}

// writeBatch writes frames (at most u.entries) to fd and calls done with each frame's
// index and result (bytes written, or a negative errno) in submission order. A frame by
// reference is written from the packet's own storage (package gather).
func (u *uring) writeBatch(fd int, frames []frame.Frame, vnet bool, done func(i int, res int32)) error {
	n := uint32(len(frames))
	u.batch.Reset()
	for i := range frames {
		f := &frames[i]
		var h []byte
		if vnet {
			h = u.hdrs[i*vnetHdrLen : (i+1)*vnetHdrLen]
			vnethdr.Encode(h, &f.Meta)
		}
		u.batch.Add(h, f)
	}
	u.batch.Finish()
	tail := atomic.LoadUint32(u.sqTail)
	for i := range frames {
		iov := u.batch.Iov(i)
		slot := (tail + uint32(i)) & u.sqMask
		sqe := u.sqes[int(slot)*sqeSize : int(slot+1)*sqeSize]
		clear(sqe)
		sqe[0] = ioringOpWritev
		binary.LittleEndian.PutUint32(sqe[4:], uint32(int32(fd)))
		binary.LittleEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(&iov[0]))))
		binary.LittleEndian.PutUint32(sqe[24:], uint32(len(iov)))
		binary.LittleEndian.PutUint64(sqe[32:], uint64(i))
		*(*uint32)(unsafe.Add(u.sqArray, 4*uintptr(slot))) = slot
	}
	atomic.StoreUint32(u.sqTail, tail+n)
	end := tail + n
	want := n // completions this batch produces
	for {
		toSubmit := end - atomic.LoadUint32(u.sqHead)
		got := atomic.LoadUint32(u.cqTail) - atomic.LoadUint32(u.cqHead)
		if toSubmit == 0 && got >= want {
			break
		}
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), uintptr(toSubmit), uintptr(want-min(got, want)), ioringEnterGetEvents, 0, 0)
		if e != 0 && e != unix.EINTR {
			u.batch.Release()
			return fmt.Errorf("io_uring_enter: %w", e)
		}
	}
	u.batch.Release() // keep no reference to the caller's buffers
	head := atomic.LoadUint32(u.cqHead)
	for stop := head + want; head != stop; head++ {
		cqe := unsafe.Add(u.cqes, uintptr(head&u.cqMask)*cqeSize)
		done(int(*(*uint64)(cqe)), *(*int32)(unsafe.Add(cqe, 8)))
	}
	atomic.StoreUint32(u.cqHead, head)
	return nil
}

func (u *uring) close() {
	if u.sqes != nil {
		unix.Munmap(u.sqes)
		u.sqes = nil
	}
	if u.ring != nil {
		unix.Munmap(u.ring)
		u.ring = nil
	}
	if u.fd >= 0 {
		unix.Close(u.fd)
		u.fd = -1
	}
}
