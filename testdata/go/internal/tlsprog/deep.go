package tlsprog

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/url"
	"time"
)

// runDeep is mode "deep": N POST /echo requests, each on its own TLS connection, whose Write,
// Read and Close each run in a new goroutine at another recursion depth. A new goroutine starts
// on a small stack, so some of these calls find too little stack left: their prologue branches
// to runtime.morestack, which grows the stack and runs the function's entry again. Probes placed
// on that branch must count such a call once. Each call is the first crypto/tls call of its
// goroutine: a call made after another one finds the stack already grown by it.
func runDeep(c ClientConfig) (Result, error) {
	var res Result
	u, err := url.Parse(c.URL)
	if err != nil {
		return res, err
	}
	config := &tls.Config{InsecureSkipVerify: c.Insecure, MinVersion: c.Version, MaxVersion: c.Version, KeyLogWriter: c.KeyLog}
	start := time.Now()
	buf := make([]byte, 64<<10)
	for i := 0; i < c.N; i++ {
		// Everything but the TLS calls happens up here, on this goroutine's grown stack.
		want := Payload(c.Size, c.Seed+uint32(i))
		req := append([]byte(fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: gotlscap-test\r\nContent-Length: %d\r\n\r\n",
			len(want))), want...)
		conn, err := tls.Dial("tcp", u.Host, config)
		if err != nil {
			return res, err
		}
		res.TLS = VersionName(conn.ConnectionState().Version)
		// Depths of 0..299 frames of ~64 bytes, a different sweep for each call: the stack left
		// at the call crosses a goroutine's first stack sizes (2-16 KiB) in steps smaller than
		// the calls' frames.
		n := 0
		steps := []struct {
			depth int
			call  func() error
		}{
			{i % 300, func() error { _, err := conn.Write(req); return err }},
			{(i * 7) % 300, func() (err error) { n, err = readResponse(conn, buf); return }},
			{(i * 13) % 300, conn.Close},
		}
		for _, s := range steps {
			done := make(chan error, 1)
			go func(depth int, call func() error) { done <- deepCall(depth, call) }(s.depth, s.call)
			if err := <-done; err != nil {
				return res, fmt.Errorf("request %d (depth %d): %v", i, s.depth, err)
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:n])), nil)
		if err != nil {
			return res, err
		}
		body, err := ioutil.ReadAll(resp.Body)
		if err != nil {
			return res, err
		}
		if !bytes.Equal(body, want) {
			return res, fmt.Errorf("request %d: body mismatch (got %d bytes, want %d)", i, len(body), len(want))
		}
		res.Requests++
		res.Sent += int64(len(want))
		res.Received += int64(len(body))
	}
	res.Elapsed = time.Since(start)
	res.Proto = "HTTP/1.1"
	return res, nil
}

// deepCall runs f `depth` frames down. The array keeps each frame ~64 bytes and the use of it
// keeps the compiler from turning the recursion into a loop.
//go:noinline
func deepCall(depth int, f func() error) error {
	var pad [4]uint64
	pad[depth%4] = uint64(depth)
	if depth == 0 {
		return f()
	}
	err := deepCall(depth-1, f)
	if pad[depth%4] != uint64(depth) {
		panic("stack corrupted")
	}
	return err
}

// readResponse reads one whole response (headers and Content-Length bytes) into buf with
// nothing but tls.Conn.Read and a few byte scans.
func readResponse(conn *tls.Conn, buf []byte) (int, error) {
	n := 0
	for {
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		head := bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if head < 0 {
			continue
		}
		cl := bytes.Index(buf[:head], []byte("Content-Length: "))
		if cl < 0 {
			return n, fmt.Errorf("response without Content-Length")
		}
		size := 0
		for _, ch := range buf[cl+16 : head] {
			if ch < '0' || ch > '9' {
				break
			}
			size = size*10 + int(ch-'0')
		}
		if n >= head+4+size {
			return n, nil
		}
	}
}
