// Command server is an HTTPS test server (HTTP/1.1 and HTTP/2) with an
// in-process self-signed certificate; see tlsprog.Handler for the endpoints.
// It prints "listening ADDR" on stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"os"

	"gotlscap.test/tlsprogs/internal/tlsprog"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address (port 0: pick a free port)")
	ver := flag.String("tls", "auto", "maximum TLS version: 1.2, 1.3 or auto")
	keylog := flag.String("keylog", "", "append TLS secrets to this file (NSS key log format)")
	h2MaxFrame := flag.Int("h2-max-frame", 0, "HTTP/2 SETTINGS_MAX_FRAME_SIZE to announce (0: Go's default; needs Go 1.24)")
	flag.Parse()

	maxVer, err := tlsprog.ParseVersion(*ver)
	check(err)
	kl, err := tlsprog.KeyLog(*keylog)
	check(err)
	ln, srv, err := tlsprog.Listen(*addr, tlsprog.ServerConfig{MaxVersion: maxVer, KeyLog: kl, H2MaxFrame: *h2MaxFrame})
	check(err)
	tlsprog.PrintListening(os.Stdout, ln)
	check(tlsprog.Serve(ln, srv))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}
