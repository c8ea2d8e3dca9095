// gosym_ref: the reference analysis for bench/analysis_bench — what eCapture and similar tools do
// with Go's standard library to locate the crypto/tls functions of a Go binary:
//
//	debug/elf.Open, debug/buildinfo.ReadFile (Go version),
//	.gopclntab section -> debug/gosym.NewLineTable(data, .text address) -> NewTable,
//	LookupFunc for each hooked function.
//
// It does not find return instructions (that needs golang.org/x/arch, not in the standard
// library), which gotlscap's analysis does on top. Usage:
//
//	gosym_ref [-n N] [-warmup W] BINARY
//
// Prints key=value lines: per-iteration time (best, mean), found functions, peak RSS (VmHWM).
package main

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

var hookNames = []string{
	"crypto/tls.(*Conn).writeRecordLocked",
	"crypto/tls.(*Conn).Read",
	"crypto/tls.(*Conn).Write",
	"crypto/tls.(*Config).writeKeyLog",
}

type result struct {
	version string
	nfunc   int
	entries []uint64
}

func analyze(path string) (*result, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("buildinfo: %w", err)
	}
	sect := f.Section(".gopclntab")
	if sect == nil {
		sect = f.Section(".data.rel.ro.gopclntab")
	}
	if sect == nil {
		return nil, fmt.Errorf("no .gopclntab section")
	}
	pcln, err := sect.Data()
	if err != nil {
		return nil, err
	}
	var symtab []byte
	if s := f.Section(".gosymtab"); s != nil {
		if symtab, err = s.Data(); err != nil {
			return nil, err
		}
	}
	text := f.Section(".text")
	if text == nil {
		return nil, fmt.Errorf("no .text section")
	}
	table, err := gosym.NewTable(symtab, gosym.NewLineTable(pcln, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("gosym: %w", err)
	}
	r := &result{version: bi.GoVersion, nfunc: len(table.Funcs)}
	for _, name := range hookNames {
		fn := table.LookupFunc(name)
		if fn == nil {
			return nil, fmt.Errorf("%s not found", name)
		}
		r.entries = append(r.entries, fn.Entry)
	}
	return r, nil
}

func vmHWMKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(s.Text(), "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return -1
}

func main() {
	n := flag.Int("n", 5, "timed iterations")
	warmup := flag.Int("warmup", 1, "untimed iterations first (warm page cache)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gosym_ref [-n N] [-warmup W] BINARY")
		os.Exit(2)
	}
	path := flag.Arg(0)
	var r *result
	var err error
	for i := 0; i < *warmup; i++ {
		if r, err = analyze(path); err != nil {
			fmt.Fprintln(os.Stderr, "gosym_ref:", err)
			os.Exit(1)
		}
	}
	var total, best time.Duration
	for i := 0; i < *n; i++ {
		t0 := time.Now()
		r, err = analyze(path)
		d := time.Since(t0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gosym_ref:", err)
			os.Exit(1)
		}
		total += d
		if best == 0 || d < best {
			best = d
		}
	}
	fmt.Printf("go_version=%s\n", r.version)
	fmt.Printf("functions=%d\n", r.nfunc)
	for i, name := range hookNames {
		fmt.Printf("func=%s %#x\n", name, r.entries[i])
	}
	fmt.Printf("iterations=%d\n", *n)
	if *n > 0 {
		fmt.Printf("best_ns=%d\n", best.Nanoseconds())
		fmt.Printf("mean_ns=%d\n", (total / time.Duration(*n)).Nanoseconds())
	}
	fmt.Printf("peak_rss_kib=%d\n", vmHWMKiB())
}
