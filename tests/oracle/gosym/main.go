// gosym-oracle: an independent answer to "where are these functions and which Go built this",
// computed only with Go's own standard library (debug/elf, debug/buildinfo, debug/gosym), so the
// tests can check gotlscap's hand-written readers against code that shares nothing with them.
//
// Usage: gosym-oracle BINARY NAME... ; prints one JSON object.
// Limits: it takes textStart from the .text section, which is right for internally linked
// binaries (what the real-binary corpus holds) but not for external linking.
package main

import (
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"encoding/json"
	"fmt"
	"os"
)

type fn struct {
	Entry uint64 `json:"entry"`
	End   uint64 `json:"end"`
}

type out struct {
	Version   string            `json:"version"`
	Path      string            `json:"path"`
	Module    string            `json:"module"`
	Settings  map[string]string `json:"settings"`
	Functions map[string]fn     `json:"functions"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gosym-oracle BINARY NAME...")
		os.Exit(2)
	}
	path := os.Args[1]
	var o out
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		fail(err)
	}
	o.Version, o.Path, o.Module = bi.GoVersion, bi.Path, bi.Main.Path
	o.Settings = map[string]string{}
	for _, s := range bi.Settings {
		o.Settings[s.Key] = s.Value
	}
	f, err := elf.Open(path)
	if err != nil {
		fail(err)
	}
	sec := f.Section(".gopclntab")
	if sec == nil {
		sec = f.Section(".data.rel.ro.gopclntab")
	}
	text := f.Section(".text")
	if sec == nil || text == nil {
		fail(fmt.Errorf("no .gopclntab or .text section"))
	}
	data, err := sec.Data()
	if err != nil {
		fail(err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		fail(err)
	}
	o.Functions = map[string]fn{}
	for _, name := range os.Args[2:] {
		if f := table.LookupFunc(name); f != nil {
			o.Functions[name] = fn{f.Entry, f.End}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gosym-oracle:", err)
	os.Exit(1)
}
