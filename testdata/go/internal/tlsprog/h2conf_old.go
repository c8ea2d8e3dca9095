//go:build !go1.24
// +build !go1.24

package tlsprog

import (
	"errors"
	"net/http"
)

func setH2MaxFrame(srv *http.Server, n int) error {
	return errors.New("-h2-max-frame needs Go 1.24 or newer (http.Server.HTTP2)")
}
