package tlsprog

import (
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServerConfig holds the server-side flags shared by cmd/server and cmd/both.
type ServerConfig struct {
	MaxVersion uint16    // 0: crypto/tls default
	KeyLog     io.Writer // optional NSS key log
	// H2MaxFrame: SETTINGS_MAX_FRAME_SIZE the HTTP/2 server announces (0:
	// Go's default, 1 MiB). 16384 makes clients split large header blocks
	// into CONTINUATION frames. Needs Go 1.24 (http.Server.HTTP2).
	H2MaxFrame int
}

// Handler serves the test endpoints. Everything a test might want to check
// is deterministic (see Payload):
//
//	/hello                 fixed text HelloText
//	/echo                  request body back (any method)
//	/bytes?n=N&seed=S      Payload(N, S)
//	/chunked?n=N&seed=S&chunk=C  Payload(N, S) streamed in C-byte pieces
//	                       (default 4096), flushed after each piece: on
//	                       HTTP/1.1 this is Transfer-Encoding: chunked
//	/gzip?n=N&seed=S       gzip(Payload(N, S)), Content-Encoding: gzip
//	/headers?n=N&seed=S    response header X-Gotlscap-Big-Response:
//	                       HeaderValue(N, ^S) (none if N is 0), the request's
//	                       X-Gotlscap-Repeat header echoed, and as body the
//	                       request's X-Gotlscap-Big header value
//	/grpc                  gRPC-style: the body is length-prefixed messages;
//	                       the answer (content-type application/grpc) holds
//	                       GrpcReplyPrefix+m for each message m, then the
//	                       trailers grpc-status: 0 and grpc-message:
//	                       "N messages"
//	/grpc?status=C         the same, with grpc-status C (an error for C != 0)
//	/delay/MS              "ok\n" after MS milliseconds (request timing tests)
//	/status/CODE           HTTP status CODE with a short text body
//	/toclose?n=N&seed=S    HTTP/1.x only: an HTTP/1.0 response without
//	                       Content-Length, body Payload(N, S), written on the
//	                       hijacked connection, which is then closed: the body
//	                       ends with the connection
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, HelloText)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, seed := intParam(r, "n", 1024), uint32(intParam(r, "seed", 0))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(Payload(n, seed))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		n, x := intParam(r, "n", 65536), uint32(intParam(r, "seed", 0))
		chunk := intParam(r, "chunk", 4096)
		if chunk <= 0 {
			chunk = 4096
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		f, _ := w.(http.Flusher)
		buf := make([]byte, chunk)
		for n > 0 {
			piece := buf
			if n < len(piece) {
				piece = piece[:n]
			}
			x = ContinuePayload(piece, x)
			if _, err := w.Write(piece); err != nil {
				return
			}
			if f != nil {
				// No Content-Length + flush => chunked framing on HTTP/1.1,
				// separate DATA frames (TLS records) on HTTP/2.
				f.Flush()
			}
			n -= len(piece)
		}
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		n, seed := intParam(r, "n", 65536), uint32(intParam(r, "seed", 0))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write(Payload(n, seed))
		zw.Close()
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		n, seed := intParam(r, "n", 0), uint32(intParam(r, "seed", 0))
		if n > 0 {
			w.Header().Set(BigResponseHeader, HeaderValue(n, ^seed))
		}
		for _, h := range []string{RepeatHeader, Latin1Header} {
			if v := r.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		body := r.Header.Get(BigHeader)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	mux.HandleFunc("/grpc", func(w http.ResponseWriter, r *http.Request) {
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msgs, ok := GrpcSplit(body)
		if !ok || r.Header.Get("Content-Type") != "application/grpc" {
			http.Error(w, "not a gRPC-style request", http.StatusBadRequest)
			return
		}
		var out []byte
		for _, m := range msgs {
			out = GrpcFrame(out, append([]byte(GrpcReplyPrefix), m...))
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(http.StatusOK)
		w.Write(out)
		w.Header().Set("Grpc-Status", strconv.Itoa(intParam(r, "status", 0)))
		w.Header().Set("Grpc-Message", fmt.Sprintf("%d messages", len(msgs)))
	})
	mux.HandleFunc("/delay/", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/delay/"))
		if err != nil || ms < 0 {
			http.Error(w, "want /delay/MS", http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "want /status/CODE", http.StatusBadRequest)
			return
		}
		http.Error(w, http.StatusText(code), code)
	})
	mux.HandleFunc("/toclose", func(w http.ResponseWriter, r *http.Request) {
		n, seed := intParam(r, "n", 1024), uint32(intParam(r, "seed", 0))
		hj, ok := w.(http.Hijacker)
		if !ok { // HTTP/2 connections cannot be taken over
			http.Error(w, "/toclose needs HTTP/1.x", http.StatusHTTPVersionNotSupported)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		head := "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
		conn.Write(append([]byte(head), Payload(n, seed)...))
	})
	return mux
}

// HelloText is the body of /hello.
const HelloText = "hello from gotlscap test server\n"

func intParam(r *http.Request, name string, def int) int {
	v, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || v < 0 {
		return def
	}
	return v
}

// Listen opens the TCP listener (so callers know the real address, e.g.
// for port 0) and returns a server ready for Serve.
func Listen(addr string, cfg ServerConfig) (net.Listener, *http.Server, error) {
	cert, err := SelfSigned()
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler: Handler(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MaxVersion:   cfg.MaxVersion,
			KeyLogWriter: cfg.KeyLog,
			// With a custom TLSConfig, list h2 explicitly: net/http's
			// bundled HTTP/2 is then negotiated via ALPN on all Go
			// versions we test (1.15+).
			NextProtos: []string{"h2", "http/1.1"},
		},
	}
	if cfg.H2MaxFrame != 0 {
		if err := setH2MaxFrame(srv, cfg.H2MaxFrame); err != nil {
			ln.Close()
			return nil, nil, err
		}
	}
	return ln, srv, nil
}

// Serve runs srv on ln with TLS until it fails or is closed.
func Serve(ln net.Listener, srv *http.Server) error {
	err := srv.ServeTLS(ln, "", "") // certificates come from TLSConfig
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// PrintListening prints the line tests wait for.
func PrintListening(w io.Writer, ln net.Listener) {
	fmt.Fprintf(w, "listening %s\n", ln.Addr().String())
}
