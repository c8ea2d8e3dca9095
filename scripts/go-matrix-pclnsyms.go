// go-matrix-pclnsyms prints "ADDR NAME" for every function in a Go ELF
// binary's .gopclntab, which Go keeps even in binaries linked with -s -w
// (the runtime needs it). go-matrix.sh compares this for a stripped binary
// and its unstripped twin, and against `go tool nm` of the twin, to prove the
// twin has the same function layout. Output format matches `go tool nm`'s
// address column (lower-case hex, no 0x).
package main

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-matrix-pclnsyms BINARY")
		os.Exit(2)
	}
	f, err := elf.Open(os.Args[1])
	check(err)
	pcln := f.Section(".gopclntab")
	text := f.Section(".text")
	if pcln == nil || text == nil {
		check(fmt.Errorf("%s: no .gopclntab or .text section", os.Args[1]))
	}
	data, err := pcln.Data()
	check(err)
	// Internally linked Go binaries start .text with runtime.text, which is
	// the base that Go >= 1.18 pclntab offsets are relative to.
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	check(err)
	for _, fn := range tab.Funcs {
		fmt.Printf("%x %s\n", fn.Entry, fn.Name)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-matrix-pclnsyms:", err)
		os.Exit(1)
	}
}
