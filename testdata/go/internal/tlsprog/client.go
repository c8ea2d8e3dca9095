package tlsprog

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// ClientConfig holds the client-side flags shared by cmd/client and cmd/both.
type ClientConfig struct {
	URL         string // base URL, e.g. https://127.0.0.1:8443
	N           int    // number of requests
	Size        int    // body size of each request (echo) / response (others)
	Seed        uint32 // request i uses Payload(Size, Seed+i)
	H2          bool   // force HTTP/2; otherwise HTTP/1.1 only
	Version     uint16 // pin TLS version (min=max); 0: negotiate
	Resume      bool   // session cache + one connection per request
	Insecure    bool   // skip certificate verification (self-signed server)
	Concurrency int
	WaitReady   time.Duration // retry TCP connect for this long before starting
	// "echo" (POST /echo only), "all" (cycle allPaths), "headers", "grpc", "toclose" (GET
	// /toclose?n=Size&seed=S: HTTP/1.0 bodies that end with the connection), or one endpoint of
	// allPaths ("bytes": GET /bytes?n=Size&seed=S only, ...)
	Mode string
	// HeaderSize > 0: every request carries BigHeader: HeaderValue(HeaderSize, seed).
	HeaderSize int
	// RepeatHeader: every request carries RepeatHeader: RepeatValue.
	RepeatHeader bool
	// Latin1Header: every request carries Latin1Header: Latin1Value (not UTF-8).
	Latin1Header bool
	KeyLog       io.Writer
	// CloseIdle: close the transport's idle connections before returning, so that every
	// connection of the run ends with (*tls.Conn).Close.
	CloseIdle bool
	// DelayMs: mode "stat"'s slow endpoint, /delay/DelayMs.
	DelayMs int
}

// Result summarises a run; Sent/Received count HTTP body bytes (what a
// capture must contain at least once), not TLS overhead.
type Result struct {
	Requests, Resumed int64
	Sent, Received    int64
	Proto, TLS        string
	Elapsed           time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("requests=%d sent=%d received=%d proto=%s tls=%s resumed=%d elapsed=%s",
		r.Requests, r.Sent, r.Received, r.Proto, r.TLS, r.Resumed, r.Elapsed.Round(time.Millisecond))
}

// paths cycled through in mode "all"; request i uses allPaths[i%len].
var allPaths = []string{"echo", "bytes", "chunked", "gzip", "hello"}

func newTransport(c ClientConfig) *http.Transport {
	tc := &tls.Config{
		InsecureSkipVerify: c.Insecure,
		MinVersion:         c.Version,
		MaxVersion:         c.Version,
		KeyLogWriter:       c.KeyLog,
	}
	if c.Resume {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	t := &http.Transport{
		TLSClientConfig:     tc,
		MaxIdleConnsPerHost: c.Concurrency,
		// A fresh TLS connection (and so a resumption handshake) per request.
		DisableKeepAlives: c.Resume,
		// We set Accept-Encoding ourselves for /gzip and decompress by hand,
		// so the gzip bytes on the wire are what the server produced.
		DisableCompression: true,
	}
	if c.H2 {
		// A custom TLSClientConfig disables automatic HTTP/2 unless forced.
		t.ForceAttemptHTTP2 = true
	} else {
		// A non-nil empty map disables HTTP/2: HTTP/1.1 only.
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t
}

// waitReady retries a TLS handshake with the URL's host until one succeeds
// or d expires. A full handshake (not just a TCP connect) keeps the server
// from logging "TLS handshake error ... EOF" for the probe; it uses its own
// config so it never seeds the -resume session cache.
func waitReady(rawurl string, d time.Duration) error {
	u, err := url.Parse(rawurl)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	dialer := &net.Dialer{Timeout: time.Second}
	for {
		conn, err := tls.DialWithDialer(dialer, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %s not ready after %s: %v", u.Host, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RunClient performs c.N requests and verifies every response body.
func RunClient(c ClientConfig) (Result, error) {
	var res Result
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if !validMode(c.Mode) {
		return res, fmt.Errorf("bad mode %q (want echo, all, headers, grpc, stat, toclose, deep or one of %v)", c.Mode, allPaths)
	}
	if c.WaitReady > 0 {
		if err := waitReady(c.URL, c.WaitReady); err != nil {
			return res, err
		}
	}
	if c.Mode == "deep" {
		return runDeep(c)
	}
	client := &http.Client{Transport: newTransport(c), Timeout: 5 * time.Minute}
	start := time.Now()

	var mu sync.Mutex
	var firstErr error
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < c.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				err := doOne(client, c, i, &res, &mu)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("request %d: %v", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < c.N; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	res.Elapsed = time.Since(start)
	if c.CloseIdle {
		client.Transport.(*http.Transport).CloseIdleConnections()
	}
	if firstErr == nil && c.Resume && c.N > 1 && res.Resumed == 0 {
		firstErr = errors.New("-resume: no TLS session was resumed")
	}
	return res, firstErr
}

func validMode(m string) bool {
	if m == "all" || m == "headers" || m == "grpc" || m == "toclose" || m == "deep" || m == "stat" {
		return true
	}
	for _, p := range allPaths {
		if m == p {
			return true
		}
	}
	return false
}

func doOne(client *http.Client, c ClientConfig, i int, res *Result, mu *sync.Mutex) error {
	path := c.Mode // echo, headers, grpc, or one endpoint of allPaths
	if c.Mode == "all" {
		path = allPaths[i%len(allPaths)]
	}
	wantStatus, grpcStatus := http.StatusOK, 0
	if c.Mode == "stat" {
		// Request i: /delay/0, /delay/DelayMs, /status/503, then a gRPC-style call answered
		// with grpc-status 13 (HTTP 200): known counts, delays and errors per path.
		switch i % 4 {
		case 0, 1:
			path = "delay"
		case 2:
			path, wantStatus = "status", http.StatusServiceUnavailable
		case 3:
			path, grpcStatus = "grpc", 13
		}
	}
	seed := c.Seed + uint32(i)
	var req *http.Request
	var err error
	var want, body []byte
	switch path {
	case "echo":
		want = Payload(c.Size, seed)
		req, err = http.NewRequest("POST", c.URL+"/echo", bytes.NewReader(want))
	case "delay":
		ms := 0
		if i%4 == 1 {
			ms = c.DelayMs
		}
		want = []byte("ok\n")
		req, err = http.NewRequest("GET", fmt.Sprintf("%s/delay/%d", c.URL, ms), nil)
	case "status":
		want = []byte(http.StatusText(wantStatus) + "\n")
		req, err = http.NewRequest("GET", fmt.Sprintf("%s/status/%d", c.URL, wantStatus), nil)
	case "hello":
		want = []byte(HelloText)
		req, err = http.NewRequest("GET", c.URL+"/hello", nil)
	case "headers":
		// The server echoes the big request header as the body.
		if c.HeaderSize > 0 {
			want = []byte(HeaderValue(c.HeaderSize, seed))
		}
		req, err = http.NewRequest("GET", fmt.Sprintf("%s/headers?n=%d&seed=%d", c.URL, c.HeaderSize, seed), nil)
	case "grpc":
		var reqBody []byte
		for j, n := range GrpcSizes(c.Size) {
			m := Payload(n, seed+uint32(j))
			reqBody = GrpcFrame(reqBody, m)
			want = GrpcFrame(want, append([]byte(GrpcReplyPrefix), m...))
		}
		target := c.URL + "/grpc"
		if grpcStatus != 0 {
			target += fmt.Sprintf("?status=%d", grpcStatus)
		}
		req, err = http.NewRequest("POST", target, bytes.NewReader(reqBody))
		if err == nil {
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
		}
	default: // bytes, chunked, gzip, toclose: all return Payload(Size, seed)
		want = Payload(c.Size, seed)
		req, err = http.NewRequest("GET", fmt.Sprintf("%s/%s?n=%d&seed=%d", c.URL, path, c.Size, seed), nil)
		if path == "gzip" {
			req.Header.Set("Accept-Encoding", "gzip")
		}
	}
	if err != nil {
		return err
	}
	if c.HeaderSize > 0 {
		req.Header.Set(BigHeader, HeaderValue(c.HeaderSize, seed))
	}
	if c.RepeatHeader {
		req.Header.Set(RepeatHeader, RepeatValue)
	}
	if c.Latin1Header {
		req.Header.Set(Latin1Header, Latin1Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("status %s", resp.Status)
	}
	if c.H2 != (resp.ProtoMajor == 2) {
		return fmt.Errorf("wanted h2=%v, got %s", c.H2, resp.Proto)
	}
	raw, err := ioutil.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	body = raw
	if path == "gzip" {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			return errors.New("/gzip response without Content-Encoding: gzip")
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		if body, err = ioutil.ReadAll(zr); err != nil {
			return err
		}
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("/%s: body mismatch (got %d bytes, want %d)", path, len(body), len(want))
	}
	if path == "headers" {
		if c.HeaderSize > 0 && resp.Header.Get(BigResponseHeader) != HeaderValue(c.HeaderSize, ^seed) {
			return fmt.Errorf("/headers: %s mismatch (%d bytes)", BigResponseHeader, len(resp.Header.Get(BigResponseHeader)))
		}
		if c.RepeatHeader && resp.Header.Get(RepeatHeader) != RepeatValue {
			return fmt.Errorf("/headers: %s not echoed", RepeatHeader)
		}
		if c.Latin1Header && resp.Header.Get(Latin1Header) != Latin1Value {
			return fmt.Errorf("/headers: %s not echoed", Latin1Header)
		}
	}
	if path == "grpc" {
		// Trailers are known once the body was read to its end.
		if got, w := resp.Trailer.Get("Grpc-Status"), fmt.Sprint(grpcStatus); got != w {
			return fmt.Errorf("/grpc: trailer grpc-status %q, want %s", got, w)
		}
		if got, w := resp.Trailer.Get("Grpc-Message"), fmt.Sprintf("%d messages", len(GrpcSizes(c.Size))); got != w {
			return fmt.Errorf("/grpc: trailer grpc-message %q, want %q", got, w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	res.Requests++
	if req.ContentLength > 0 {
		res.Sent += req.ContentLength
	}
	res.Received += int64(len(raw))
	res.Proto = resp.Proto
	if resp.TLS != nil {
		res.TLS = VersionName(resp.TLS.Version)
		if resp.TLS.DidResume {
			res.Resumed++
		}
	}
	return nil
}
