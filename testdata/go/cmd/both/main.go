// Command both runs the test server on 127.0.0.1:0 and the client against
// it in one process (one PID holds both ends of every TLS connection), and
// exits 0 when all requests were verified.
package main

import (
	"flag"
	"fmt"
	"os"

	"gotlscap.test/tlsprogs/internal/tlsprog"
)

func main() {
	cfg := tlsprog.ClientFlags(false)
	ver := flag.String("tls", "auto", "TLS version for both ends: 1.2, 1.3 or auto")
	keylog := flag.String("keylog", "", "append TLS secrets (both ends) to this file")
	flag.Parse()

	v, err := tlsprog.ParseVersion(*ver)
	check(err)
	kl, err := tlsprog.KeyLog(*keylog)
	check(err)
	ln, srv, err := tlsprog.Listen("127.0.0.1:0", tlsprog.ServerConfig{MaxVersion: v, KeyLog: kl})
	check(err)
	tlsprog.PrintListening(os.Stdout, ln)
	go func() { check(tlsprog.Serve(ln, srv)) }()

	c := cfg()
	c.URL = "https://" + ln.Addr().String()
	c.Version, c.KeyLog = v, kl
	res, err := tlsprog.RunClient(c)
	srv.Close()
	if err != nil {
		fmt.Printf("both: FAIL %s: %v\n", res, err)
		os.Exit(1)
	}
	fmt.Printf("both: ok %s cgo=%d\n", res, tlsprog.CgoMarker)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "both:", err)
		os.Exit(2)
	}
}
