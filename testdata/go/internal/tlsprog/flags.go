package tlsprog

import (
	"flag"
	"time"
)

// ClientFlags registers the client flags shared by cmd/client and cmd/both
// on the default flag set. Call the returned function after flag.Parse.
// withURL is false for cmd/both, whose URL is its own in-process server.
func ClientFlags(withURL bool) func() ClientConfig {
	c := ClientConfig{}
	url := "https://127.0.0.1:8443"
	if withURL {
		flag.StringVar(&url, "url", url, "server base URL")
	}
	flag.IntVar(&c.N, "n", 1, "number of requests")
	flag.IntVar(&c.Size, "size", 1024, "body bytes per request (echo: sent; bytes/chunked/gzip: received)")
	seed := flag.Uint("seed", 1, "payload seed; request i uses Payload(size, seed+i)")
	flag.BoolVar(&c.H2, "h2", false, "force HTTP/2 (default: HTTP/1.1 only)")
	flag.BoolVar(&c.Resume, "resume", false, "new TLS connection per request, resumed from a session cache")
	flag.BoolVar(&c.Insecure, "insecure", true, "skip certificate verification (the test server is self-signed)")
	flag.IntVar(&c.Concurrency, "concurrency", 1, "parallel requests")
	wait := flag.Int("wait-ready", 0, "retry connecting to the server for up to this many seconds")
	flag.StringVar(&c.Mode, "mode", "echo", "echo: POST /echo only; all: cycle echo, bytes, chunked, gzip, hello; "+
		"headers: GET /headers?n=HEADER-SIZE (large headers both ways); grpc: gRPC-style POST /grpc with trailers; "+
		"stat: cycle GET /delay/0, GET /delay/DELAY-MS, GET /status/503 and a gRPC-style call answered with grpc-status 13; "+
		"toclose: GET /toclose (HTTP/1.0 body ending with the connection); "+
		"deep: POST /echo over one raw tls.Conn, each request from a new goroutine at another stack depth; "+
		"bytes, chunked, gzip or hello: that endpoint only")
	flag.IntVar(&c.HeaderSize, "header-size", 0, "add header "+BigHeader+" of this many bytes to every request")
	flag.BoolVar(&c.RepeatHeader, "repeat-header", false, "add header "+RepeatHeader+" (the same value) to every request")
	flag.BoolVar(&c.Latin1Header, "latin1-header", false, "add header "+Latin1Header+" (bytes that are not UTF-8) to every request")
	flag.IntVar(&c.DelayMs, "delay-ms", 80, "mode stat: the slow endpoint's delay in milliseconds")
	flag.BoolVar(&c.CloseIdle, "close-idle", false, "close idle connections before exiting (every connection ends with tls.Conn.Close)")
	return func() ClientConfig {
		c.URL = url
		c.Seed = uint32(*seed)
		c.WaitReady = time.Duration(*wait) * time.Second
		return c
	}
}
