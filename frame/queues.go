package frame

// QueueCounts is what one device queue of a multi-queue port (a TAP with several
// queues) carried.
type QueueCounts struct {
	// RxFrames counts the frames read from the queue.
	RxFrames uint64 `json:"rx_frames"`
	// TxFrames counts the frames written to the queue.
	TxFrames uint64 `json:"tx_frames"`
}

// QueueReporter is a port over several device queues that counts each.
type QueueReporter interface {
	// QueueCounts returns each queue's counts, in queue order.
	QueueCounts() []QueueCounts
}

// PortQueues returns the per-queue counts of p, looking through decorators as
// PortDrops does; nil when no layer has queues.
func PortQueues(p Port) []QueueCounts {
	for l := range layers(p) {
		if r, ok := l.(QueueReporter); ok {
			return r.QueueCounts()
		}
	}
	return nil
}
