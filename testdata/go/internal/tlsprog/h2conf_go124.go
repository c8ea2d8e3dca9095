//go:build go1.24
// +build go1.24

package tlsprog

import "net/http"

func setH2MaxFrame(srv *http.Server, n int) error {
	srv.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: n}
	return nil
}
