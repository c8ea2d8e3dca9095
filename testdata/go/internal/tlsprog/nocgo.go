//go:build !cgo
// +build !cgo

package tlsprog

// CgoMarker is 0 when built without cgo (see cgo.go).
var CgoMarker = 0
