// Command client sends requests to the test server and verifies every
// response body (echo: byte-for-byte what it sent). It exits non-zero on any
// mismatch or error and prints one summary line.
package main

import (
	"flag"
	"fmt"
	"os"

	"gotlscap.test/tlsprogs/internal/tlsprog"
)

func main() {
	cfg := tlsprog.ClientFlags(true)
	ver := flag.String("tls", "auto", "pin the TLS version: 1.2, 1.3 or auto")
	keylog := flag.String("keylog", "", "append TLS secrets to this file (NSS key log format)")
	flag.Parse()

	c := cfg()
	var err error
	c.Version, err = tlsprog.ParseVersion(*ver)
	check(err)
	c.KeyLog, err = tlsprog.KeyLog(*keylog)
	check(err)
	res, err := tlsprog.RunClient(c)
	if err != nil {
		fmt.Printf("client: FAIL %s: %v\n", res, err)
		os.Exit(1)
	}
	fmt.Printf("client: ok %s\n", res)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
}
