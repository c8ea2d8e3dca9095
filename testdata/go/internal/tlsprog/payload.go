package tlsprog

// Payload returns n deterministic bytes for seed, so that a test (in any
// language) can recompute exactly what a program sent or received.
//
// Generator (32-bit LCG, "Numerical Recipes" constants), all arithmetic mod 2^32:
//
//	x := uint32(seed)
//	for i := 0; i < n; i++ {
//		x = x*1664525 + 1013904223
//		out[i] = byte(x >> 24)
//	}
func Payload(n int, seed uint32) []byte {
	out := make([]byte, n)
	ContinuePayload(out, seed)
	return out
}

// ContinuePayload fills b continuing from generator state x (initially the
// seed) and returns the new state, so a stream can be produced in pieces:
// Payload(n, s) == the concatenation of pieces produced this way.
func ContinuePayload(b []byte, x uint32) uint32 {
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return x
}
