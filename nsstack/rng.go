package nsstack

import (
	mrand "math/rand"
	"math/rand/v2"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// pcgSource is a namespace's non-cryptographic random source (stack.Options.RandSource):
// gVisor draws jitter for NDP, IGMP and MLD timers, TCP flow hashes and its dispatcher
// seed from it. gVisor's default is a math/rand source seeded by getrandom, 4.9 KB of
// state per stack; a PCG is 16 bytes. Each is seeded from math/rand/v2's global
// generator (ChaCha8 seeded by the runtime from the OS), so no two namespaces share a
// sequence and none can predict another's. Secrets (TCP sequence numbers, timestamp
// offsets, ephemeral ports) still come from crypto/rand, gVisor's default SecureRNG.
type pcgSource struct {
	mu  sync.Mutex
	pcg rand.PCG // guarded by mu
}

var _ mrand.Source = (*pcgSource)(nil)

func newPCGSource() *pcgSource {
	s := &pcgSource{}
	s.pcg.Seed(rand.Uint64(), rand.Uint64())
	return s
}

// Int63 implements math/rand.Source. gVisor calls it from many goroutines.
func (s *pcgSource) Int63() int64 {
	s.mu.Lock()
	v := s.pcg.Uint64()
	s.mu.Unlock()
	return int64(v >> 1)
}

// Seed implements math/rand.Source.
func (s *pcgSource) Seed(seed int64) {
	s.mu.Lock()
	s.pcg.Seed(uint64(seed), 0)
	s.mu.Unlock()
}

// ipv4Protocol is one IPv4 protocol factory shared by every namespace. ipv4.NewProtocol
// builds a fresh factory per stack, and each one fills a 2,048-entry table of IP ID
// counters from getrandom (16 KB allocated, 8 KB kept, about a third of a namespace's
// creation time). This gVisor version never reads that table (each packet's ID is drawn from
// the stack's SecureRNG, see ipv4's getID), so sharing it costs no isolation; everything
// stateful (endpoints, fragment reassembly, multicast routes, options) is still built
// per stack by the factory's closure.
var ipv4Protocol = sync.OnceValue(func() stack.NetworkProtocolFactory {
	return ipv4.NewProtocolWithOptions(ipv4.Options{})
})
