package frame

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestQueueFIFOAndBound(t *testing.T) {
	q := NewQueue(3)
	for i := 0; i < 3; i++ {
		b := GetBuf(64)
		b.N = i + 1
		if !q.Push(b) {
			t.Fatalf("Push #%d failed below capacity", i)
		}
	}
	extra := GetBuf(64)
	if q.Push(extra) {
		t.Fatal("Push beyond capacity succeeded")
	}
	extra.Release()
	out := make([]*Buf, 2)
	n, err := q.Pop(out)
	if err != nil || n != 2 || out[0].N != 1 || out[1].N != 2 {
		t.Fatalf("Pop = %d, %v (N %d, %d), want 2 frames 1, 2", n, err, out[0].N, out[1].N)
	}
	if got := q.TryPop(out); got != 1 || out[0].N != 3 {
		t.Fatalf("TryPop = %d, want the third frame", got)
	}
	if got := q.TryPop(out); got != 0 {
		t.Fatalf("TryPop on empty queue = %d", got)
	}
}

func TestQueueCloseWakesPop(t *testing.T) {
	q := NewQueue(4)
	errc := make(chan error, 1)
	go func() {
		_, err := q.Pop(make([]*Buf, 1))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	q.Close() // idempotent
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Pop after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pop did not return after Close")
	}
	b := GetBuf(64)
	if q.Push(b) {
		t.Fatal("Push after Close succeeded")
	}
}

func TestQueuePushBatch(t *testing.T) {
	q := NewQueue(4)
	defer q.Close()
	bufs := make([]*Buf, 6)
	for i := range bufs {
		bufs[i] = GetBuf(64)
		bufs[i].N = i
	}
	if n := q.PushBatch(bufs); n != 4 {
		t.Fatalf("PushBatch(6) into a 4-deep queue = %d, want 4", n)
	}
	out := make([]*Buf, 8)
	if n, err := q.Pop(out); n != 4 || err != nil || out[0].N != 0 || out[3].N != 3 {
		t.Fatalf("Pop = %d, %v", n, err)
	}
}

// TestQueueGrowsInOrder: the ring starts small and grows while wrapped around, keeping
// FIFO order, up to exactly its capacity.
func TestQueueGrowsInOrder(t *testing.T) {
	q := NewQueue(100)
	defer q.Close()
	if len(q.ring) != 0 {
		t.Fatalf("a new queue holds a %d-slot ring, want none until the first push", len(q.ring))
	}
	next, want := 0, 0
	push := func(k int) {
		for i := 0; i < k; i++ {
			b := GetBuf(64)
			b.N = next
			if !q.Push(b) {
				t.Fatalf("Push %d refused at Len %d", next, q.Len())
			}
			next++
		}
	}
	pop := func(k int) {
		out := make([]*Buf, k)
		if n := q.TryPop(out); n != k {
			t.Fatalf("TryPop = %d, want %d", n, k)
		}
		for _, b := range out {
			if b.N != want {
				t.Fatalf("popped %d, want %d (order lost)", b.N, want)
			}
			want++
			b.Release()
		}
	}
	push(10)
	pop(7) // head moves, so the next growth happens with the ring wrapped
	push(14)
	if len(q.ring) != 32 {
		t.Errorf("ring = %d slots after holding 17, want 32", len(q.ring))
	}
	bufs := make([]*Buf, 100)
	for i := range bufs {
		bufs[i] = GetBuf(64)
		bufs[i].N = next + i
	}
	took := q.PushBatch(bufs)
	next += took
	ReleaseBufs(bufs[took:])
	if q.Len() != 100 || took != 83 || len(q.ring) != 100 {
		t.Errorf("after PushBatch: Len %d, took %d, ring %d; want 100, 83, 100 (capacity)", q.Len(), took, len(q.ring))
	}
	if b := GetBuf(64); q.Push(b) {
		t.Error("Push beyond capacity succeeded")
	} else {
		b.Release()
	}
	pop(100)
}

// TestQueueBytes: a queue bounded in bytes takes many small buffers but few large ones,
// always one into an empty queue, and gives the room back as buffers leave (popped or
// released on Close).
func TestQueueBytes(t *testing.T) {
	small, big := GetBuf(1500), GetBuf(60000)
	sz, bz := len(small.B), len(big.B)
	small.Release()
	big.Release()
	q := NewQueueBytes(100, 4*bz)
	defer q.Close()
	var bufs []*Buf
	for range 5 {
		bufs = append(bufs, GetBuf(60000))
	}
	if n := q.PushBatch(bufs); n != 4 {
		t.Fatalf("PushBatch(5 x %d bytes) into a %d-byte queue = %d, want 4", bz, 4*bz, n)
	}
	if q.Push(GetBuf(1500)) {
		t.Fatalf("Push(%d bytes) into a full queue = true", sz)
	}
	out := make([]*Buf, 2)
	if n := q.TryPop(out); n != 2 {
		t.Fatalf("TryPop = %d, want 2", n)
	}
	ReleaseBufs(out)
	if !q.Push(bufs[4]) {
		t.Fatalf("Push after two were popped = false")
	}
	out = make([]*Buf, 8)
	ReleaseBufs(out[:q.TryPop(out)])
	q1 := NewQueueBytes(100, sz)
	defer q1.Close()
	if !q1.Push(GetBuf(60000)) {
		t.Fatalf("Push(a buffer larger than the limit) into an empty queue = false")
	}
	var smalls []*Buf
	for range 100 {
		smalls = append(smalls, GetBuf(1500))
	}
	want := min(100, (4*bz)/sz)
	if n := q.PushBatch(smalls); n != want {
		t.Fatalf("PushBatch(100 x %d bytes) = %d, want %d", sz, n, want)
	}
	ReleaseBufs(smalls[want:])
}
