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

// headerAlphabet: the characters of HeaderValue.
const headerAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// HeaderValue returns n deterministic header-safe characters for seed:
// byte i is headerAlphabet[Payload(n, seed)[i] % 36].
func HeaderValue(n int, seed uint32) string {
	p := Payload(n, seed)
	for i, b := range p {
		p[i] = headerAlphabet[int(b)%len(headerAlphabet)]
	}
	return string(p)
}

// RepeatHeader is the header that -repeat-header adds to every request with
// the value RepeatValue (the same on every request: HPACK indexes it once
// and later requests refer to its dynamic-table entry).
const (
	RepeatHeader = "X-Gotlscap-Repeat"
	RepeatLen    = 300
	RepeatSeed   = 0x5eed
)

// RepeatValue is HeaderValue(RepeatLen, RepeatSeed).
var RepeatValue = HeaderValue(RepeatLen, RepeatSeed)

// Latin1Header is the header that -latin1-header adds to every request and
// /headers echoes: a value with bytes that are not UTF-8 (obs-text, which
// HTTP allows and Go sends as they are), for the JSON output's escaping.
const (
	Latin1Header = "X-Gotlscap-Latin1"
	Latin1Value  = "caf\xe9 \xff\xfe end"
)

// BigHeader is the request header that -header-size N adds to every request
// (value HeaderValue(N, seed of the request)); BigResponseHeader is the one
// /headers?n=N&seed=S answers with (value HeaderValue(N, ^S)).
const (
	BigHeader         = "X-Gotlscap-Big"
	BigResponseHeader = "X-Gotlscap-Big-Response"
)

// GrpcSizes returns the sizes of the gRPC-style messages of one request of
// `-mode grpc` with -size size: message j holds Payload(GrpcSizes[j], seed+j).
func GrpcSizes(size int) []int { return []int{3, size, 0, 17} }

// GrpcFrame appends one length-prefixed message (gRPC wire format:
// compressed flag 0, 4-byte big-endian length, message) to b.
func GrpcFrame(b, msg []byte) []byte {
	n := len(msg)
	b = append(b, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(b, msg...)
}

// GrpcSplit splits a body of length-prefixed messages.
func GrpcSplit(b []byte) ([][]byte, bool) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 5 || b[0] > 1 {
			return nil, false
		}
		n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
		if n < 0 || len(b)-5 < n {
			return nil, false
		}
		out = append(out, b[5:5+n])
		b = b[5+n:]
	}
	return out, true
}

// GrpcReplyPrefix: /grpc answers each message m with GrpcReplyPrefix + m.
const GrpcReplyPrefix = "ok:"
