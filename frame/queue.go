package frame

// Queue is a Ring of pooled buffers: Close releases the buffers still queued, and
// PushCopies fills it with copies of a caller's frames.
type Queue struct {
	Ring[*Buf]
}

// NewQueue returns a queue holding at most capacity buffers.
func NewQueue(capacity int) *Queue {
	q := &Queue{}
	q.init(capacity, (*Buf).Release)
	return q
}

// NewQueueBytes returns a queue holding at most capacity buffers whose memory adds up
// to at most maxBytes: short frames can queue deep while superframes' 64 KiB buffers
// stay bounded. A buffer weighs its storage (len(Buf.B), a pool class size), plus the
// frame's length when it holds the frame by reference (the sender's memory it keeps).
func NewQueueBytes(capacity, maxBytes int) *Queue {
	q := NewQueue(capacity)
	q.SetCostLimit(maxBytes, bufCost)
	return q
}

func bufCost(b *Buf) int {
	if b.Pkt != nil {
		return len(b.B) + b.N
	}
	return len(b.B)
}

// PushCopies queues a pooled copy of every frame in frames whose length is between
// MinFrameLen and maxLen, in order, taking the queue's lock once per 64 frames. It
// returns how many frames it took and their bytes; the others (bad length, no room)
// are the caller's to count as dropped.
func (q *Queue) PushCopies(frames []Frame, maxLen int) (took, bytes int) {
	var batch [64]*Buf
	var lens [64]int
	for len(frames) > 0 {
		k := 0
		for k < len(batch) && len(frames) > 0 {
			f := &frames[0]
			frames = frames[1:]
			if f.N < MinFrameLen || f.N > maxLen {
				continue
			}
			b := GetBuf(f.N)
			b.CopyFrom(f)
			batch[k], lens[k] = b, f.N // lens: once queued, a buffer is the reader's
			k++
		}
		n := q.PushBatch(batch[:k])
		ReleaseBufs(batch[n:k])
		for _, l := range lens[:n] {
			bytes += l
		}
		took += n
		clear(batch[:k])
	}
	return took, bytes
}
