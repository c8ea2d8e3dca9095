//go:build cgo
// +build cgo

package tlsprog

// Only in CGO_ENABLED=1 builds: a real C function call makes sure the binary
// is a genuine cgo program (runtime/cgo, external linker), independent of
// whether package net happens to pick its cgo resolver.

/*
static int gotlscap_cgo_marker(void) { return 42; }
*/
import "C"

// CgoMarker is 42 in cgo builds (see nocgo.go for the other case).
var CgoMarker = int(C.gotlscap_cgo_marker())
