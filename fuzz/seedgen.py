#!/usr/bin/env python3
"""Builds small fuzz seeds from a real Go binary (used by make-seeds.sh; stdlib only).

The real binaries are 5-10 MB, far too big to mutate usefully. This writes miniature Go ELF
files (a few KiB) that still take every step of AnalyzeGoBinary: the crypto/tls functions' real
machine code copied from the source binary, a synthetic pclntab of each format naming them, a
.go.buildinfo blob, a runtime.firstmoduledata record, and optional .symtab / .rela.dyn / PT_INTERP.

  seedgen.py elf  SRC INSPECT_JSON OUTDIR/go_binary PREFIX   # mini ELFs, every format/variant
  seedgen.py pcln SRC INSPECT_JSON OUTDIR/pclntab   PREFIX   # bare synthetic tables + 64 KiB real prefix
  seedgen.py bi   SRC INSPECT_JSON OUTDIR/buildinfo PREFIX   # raw .go.buildinfo + segment bytes
  seedgen.py stress OUTDIR                                   # big inputs that once hung the readers

INSPECT_JSON is `gotlscap inspect --json SRC` (function addresses, sizes, file offsets).
"""
import json
import os
import struct
import sys

MAGIC = {"go1.2": 0xFFFFFFFB, "go1.16": 0xFFFFFFFA, "go1.18": 0xFFFFFFF0, "go1.20": 0xFFFFFFF1}
BASE = 0x400000          # vaddr = BASE + file offset for every segment (as Go's linker does)
EM = {"amd64": 62, "arm64": 183}
R_RELATIVE = {"amd64": 8, "arm64": 1027}
PT_LOAD, PT_INTERP = 1, 3
PF_X, PF_W, PF_R = 1, 2, 4


def align(n, a):
    return (n + a - 1) // a * a


def pad_to(buf, a):
    buf += b"\0" * (align(len(buf), a) - len(buf))


# ---------------------------------------------------------------------------------------------
# pclntab
def build_pclntab(fmt, funcs, vaddr, text_start, header_text, quantum):
    """funcs: [(name, entry, size, args)] sorted by entry. Returns (bytes, funcname_offset)."""
    n = len(funcs)
    end = funcs[-1][1] + funcs[-1][2]
    P = 8
    out = bytearray(struct.pack("<IBBBB", MAGIC[fmt], 0, 0, quantum, P))
    if fmt == "go1.2":
        # nfunc, functab {entry, funcoff} x n, end entry, filetab offset (u32); names + _func after.
        out += struct.pack("<Q", n)
        ftab_at = len(out)
        out += b"\0" * (16 * n + 8 + 8)
        recs = []
        for name, entry, size, args in funcs:
            pad_to(out, 8)
            name_off = len(out)
            out += name.encode() + b"\0"
            pad_to(out, 8)
            recs.append(len(out))
            # _func: entry uintptr, nameoff i32, args i32, deferreturn, pcsp, pcfile, pcln, npcdata,
            # funcID/nfuncdata (Go 1.15 layout, 40 bytes for P=8)
            out += struct.pack("<QiiIIIIIBBBB", entry, name_off, args, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        for i, (name, entry, size, args) in enumerate(funcs):
            struct.pack_into("<QQ", out, ftab_at + 16 * i, entry, recs[i])
        struct.pack_into("<Q", out, ftab_at + 16 * n, end)
        return bytes(out), 0
    v118 = fmt in ("go1.18", "go1.20")
    nwords = 8 if v118 else 7
    hdr_len = 8 + nwords * P
    out += b"\0" * (hdr_len - len(out))
    funcname_off = len(out)
    name_offs = []
    for name, *_ in funcs:
        name_offs.append(len(out) - funcname_off)
        out += name.encode() + b"\0"
    cu_off = len(out)
    out += struct.pack("<I", 0)                      # cutab: one CU, file 0
    filetab_off = len(out)
    out += b"tls.go\0"
    pctab_off = len(out)
    out += b"\0\x02\x00"                              # a tiny pc-value table
    pad_to(out, 8)
    pcln_off = len(out)
    fs = 4 if v118 else P                            # functab field size
    ftab = bytearray(fs * (2 * n + 2))
    out += ftab
    recs = []
    for i, (name, entry, size, args) in enumerate(funcs):
        pad_to(out, 8)
        recs.append(len(out) - pcln_off)
        if v118:
            # entryOff, nameOff, args, deferreturn, pcsp, pcfile, pcln, npcdata, cuOffset, startLine,
            # funcID, flag, pad, nfuncdata
            out += struct.pack("<IiiIIIIIIiBBBB", entry - text_start, name_offs[i], args, 0, 1, 1, 1, 0, 0, 1,
                               0, 0, 0, 0)
        else:
            out += struct.pack("<QiiIIIIIIBBBB", entry, name_offs[i], args, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    for i, (name, entry, size, args) in enumerate(funcs):
        e = entry - text_start if v118 else entry
        struct.pack_into("<II" if v118 else "<QQ", out, pcln_off + 2 * i * fs, e, recs[i])
    struct.pack_into("<I" if v118 else "<Q", out, pcln_off + 2 * n * fs, end - text_start if v118 else end)
    words = [n, 1] + ([header_text] if v118 else []) + [funcname_off, cu_off, filetab_off, pctab_off, pcln_off]
    struct.pack_into("<%dQ" % nwords, out, 8, *words)
    return bytes(out), funcname_off


# ---------------------------------------------------------------------------------------------
# .go.buildinfo
SENTINEL_A = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
SENTINEL_B = bytes.fromhex("f932433186182072008242104116d8f2")


def modinfo_text(info):
    lines = ["path\t" + info.get("main_path", "example.com/m")]
    lines.append("mod\t%s\t%s\t" % (info.get("module_path", "example.com/m"), info.get("module_version", "(devel)")))
    lines.append("dep\tgolang.org/x/net\tv0.1.0\th1:abc=")
    for k, v in (info.get("build_settings") or {"-compiler": "gc", "CGO_ENABLED": "0"}).items():
        lines.append("build\t%s=%s" % (k, v))
    lines.append('build\t-ldflags="-s -w"')
    return SENTINEL_A + ("\n".join(lines) + "\n").encode() + SENTINEL_B


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def build_buildinfo(info, inline, seg_vaddr, seg):
    """Appends a buildinfo blob (16-aligned) to `seg` (bytearray at seg_vaddr); returns its offset."""
    version = info.get("go_version_raw", "go1.24.0").encode()
    mod = modinfo_text(info)
    pad_to(seg, 32)
    at = len(seg)
    seg += b"\xff Go buildinf:" + bytes([8, 2 if inline else 0])
    if inline:
        seg += b"\0" * 16
        seg += uvarint(len(version)) + version + uvarint(len(mod)) + mod
    else:
        # Two pointers to Go string headers {ptr, len}, which point at the bytes.
        hdrs = at + 32
        strs = hdrs + 32
        seg += struct.pack("<QQ", seg_vaddr + hdrs, seg_vaddr + hdrs + 16)
        seg += struct.pack("<QQQQ", seg_vaddr + strs, len(version), seg_vaddr + strs + len(version), len(mod))
        seg += version + mod
    return at


# ---------------------------------------------------------------------------------------------
# ELF writer
def write_elf(arch, etype, segments, sections, interp_at=None):
    """segments: [(flags, bytes)] laid out back to back (64-aligned) from offset 0x200.
    sections: [(name, type, flags, seg_index or None, offset_in_seg, size, link, info, entsize, raw)]
    Returns the file bytes. vaddr = BASE + file offset."""
    nph = len(segments) + (1 if interp_at is not None else 0)
    off = align(64 + 56 * nph, 64)
    img = bytearray(off)
    seg_offs = []
    for flags, data in segments:
        off = align(len(img), 64)
        img += b"\0" * (off - len(img))
        seg_offs.append(off)
        img += data
    phdrs = bytearray()
    if interp_at is not None:
        si, so, sz = interp_at
        o = seg_offs[si] + so
        phdrs += struct.pack("<IIQQQQQQ", PT_INTERP, PF_R, o, BASE + o, BASE + o, sz, sz, 1)
    for (flags, data), o in zip(segments, seg_offs):
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, flags, o, BASE + o, BASE + o, len(data), len(data), 64)
    img[64:64 + len(phdrs)] = phdrs
    shoff, shnum, shstrndx = 0, 0, 0
    if sections:
        shstr = bytearray(b"\0")
        raw_offs = []
        for s in sections:
            if s[9] is not None:     # section with its own bytes (not in a loaded segment)
                pad_to(img, 8)
                raw_offs.append(len(img))
                img += s[9]
            else:
                raw_offs.append(None)
        names = []
        for s in sections + [(".shstrtab",)]:
            names.append(len(shstr))
            shstr += s[0].encode() + b"\0"
        shstr_off = len(img)
        img += shstr
        pad_to(img, 8)
        shoff = len(img)
        img += b"\0" * 64  # SHN_UNDEF
        for i, (name, typ, flags, si, so, size, link, info, entsize, raw) in enumerate(sections):
            o = raw_offs[i] if raw is not None else seg_offs[si] + so
            addr = 0 if raw is not None else BASE + o
            img += struct.pack("<IIQQQQIIQQ", names[i], typ, flags, addr, o, size, link, info, 8, entsize)
        img += struct.pack("<IIQQQQIIQQ", names[-1], 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
        shnum = len(sections) + 2
        shstrndx = shnum - 1
    entry = BASE + seg_offs[0]
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", etype, EM[arch], 1, entry, 64, shoff, 0, 64, 56, nph, 64, shnum, shstrndx)
    img[0:64] = ehdr
    return bytes(img)


def hook_funcs(src, info):
    """[(name, code bytes, args)] for the hooked functions, sorted by address, plus two fillers."""
    data = open(src, "rb").read()
    out = []
    for name, f in sorted(info["functions"].items(), key=lambda kv: kv[1]["address"]):
        code = data[f["file_offset"]:f["file_offset"] + f["size"]]
        out.append((name, code, f.get("args_size", 0)))
    filler = b"\xc3" if info["arch"] == "amd64" else bytes.fromhex("c0035fd6")
    out.insert(0, ("runtime.text", filler * 4, 0))
    out.append(("main.main", filler * 4, 0))
    return out


def make_elf(src, info, fmt, variant):
    arch = info["arch"]
    funcs = hook_funcs(src, info)
    quantum = 1 if arch == "amd64" else 4
    # Segment 0: text. Offsets are computed first so that vaddrs are known: text starts at 0x200.
    text = bytearray()
    layout = []
    for name, code, args in funcs:
        pad_to(text, 32)
        layout.append((name, len(text), len(code), args))
        text += code
    text_off = align(64 + 56 * (4 if variant == "pie" else 3), 64)
    text_start = BASE + text_off
    fl = [(name, text_start + o, (layout[i + 1][1] - o) if i + 1 < len(layout) else size, args)
          for i, (name, o, size, args) in enumerate(layout)]
    rodata_off = align(text_off + len(text), 64)
    # Header textStart: Go 1.26+ writes 0 (moduledata / runtime.text symbol tell it instead).
    header_text = 0 if variant in ("pie", "symtab", "nosections") else text_start
    tab, fnoff = build_pclntab(fmt, fl, BASE + rodata_off, text_start, header_text, quantum)
    rodata = bytearray(tab)
    interp = None
    if variant == "pie":
        pad_to(rodata, 8)
        interp = (1, len(rodata), 28)
        rodata += b"/lib64/ld-linux-x86-64.so.2\0"
    data_off = align(rodata_off + len(rodata), 64)
    data = bytearray()
    bi_at = build_buildinfo(info, fmt != "go1.2", BASE + data_off, data)
    bi_len = len(data) - bi_at
    pad_to(data, 8)
    md_at = len(data)
    tab_vaddr = BASE + rodata_off
    md = [0] * 30
    if fmt == "go1.2":
        md[0], md[3], md[12] = tab_vaddr, tab_vaddr + 16, text_start
    else:
        md[0], md[1], md[22] = tab_vaddr, tab_vaddr + fnoff, text_start
    relocs = []
    if variant == "pie":  # the linker left the words zero: the values live in RELATIVE relocations
        for w in (0, 1, 3, 12, 22):
            if md[w]:
                relocs.append((BASE + data_off + md_at + 8 * w, md[w]))
                md[w] = 0
    if variant != "symtab":
        data += struct.pack("<30Q", *md)
    segments = [(PF_R | PF_X, bytes(text)), (PF_R, bytes(rodata)), (PF_R | PF_W, bytes(data))]
    tabname = ".data.rel.ro" if variant == "pie" else ".gopclntab"
    sections = []
    if variant != "nosections":
        sections = [
            (".text", 1, 6, 0, 0, len(text), 0, 0, 0, None),
            (tabname, 1, 2, 1, 0, len(rodata), 0, 0, 0, None),
            (".go.buildinfo", 1, 3, 2, bi_at, bi_len, 0, 0, 0, None),
            (".noptrdata", 1, 3, 2, md_at, len(data) - md_at, 0, 0, 0, None),
        ]
        if variant == "symtab":
            strtab = b"\0runtime.text\0main.main\0"
            syms = b"\0" * 24 + struct.pack("<IBBHQQ", 1, 0x12, 0, 1, text_start, 0) \
                + struct.pack("<IBBHQQ", 14, 0x12, 0, 1, fl[-1][1], 0)
            sections.append((".symtab", 2, 0, None, 0, len(syms), len(sections) + 2, 1, 24, syms))
            sections.append((".strtab", 3, 0, None, 0, len(strtab), 0, 0, 0, strtab))
        if relocs:
            rela = b"".join(struct.pack("<QQq", w, R_RELATIVE[arch], a) for w, a in relocs)
            sections.append((".rela.dyn", 4, 2, None, 0, len(rela), 0, 0, 24, rela))
    etype = 3 if variant == "pie" else 2
    return write_elf(arch, etype, segments, sections, interp)


def elf_sections(img):
    """{name: (addr, offset, size)} of a real ELF64 file."""
    shoff, = struct.unpack_from("<Q", img, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", img, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", img, shoff + i * shentsize) for i in range(shnum)]
    stro = hdrs[shstrndx][4]
    out = {}
    for h in hdrs:
        end = img.index(b"\0", stro + h[0])
        out[img[stro + h[0]:end].decode()] = (h[3], h[4], h[5])
    return out


def stress(outdir):
    """Inputs that were quadratic before the fuzz fixes (a few MiB: generated, not committed)."""
    os.makedirs(os.path.join(outdir, "go_binary"), exist_ok=True)
    os.makedirs(os.path.join(outdir, "pclntab"), exist_ok=True)
    # 1. A writable segment packed with parseable go1.20 headers: every one used to trigger a
    #    FindModuledata pass over the segment (ScanForMagic; 23 s CPU for 4 MiB).
    tab, _ = build_pclntab("go1.20", [("main.main", 0x401000, 16, 0)], 0x500000, 0x401000, 0, 1)
    tab += b"\0" * (-len(tab) % 8)
    blob = tab * ((4 << 20) // len(tab))
    img = write_elf("amd64", 2, [(PF_R | PF_X, b"\xc3" * 64), (PF_R | PF_W, blob)], [])
    with open(os.path.join(outdir, "go_binary", "stress-many-magics.elf"), "wb") as f:
        f.write(img)
    # 2. A name table holding the hooked name 60k times, and 60k functions none of which is it:
    #    Lookup compared every nameoff with every occurrence.
    n = 60000
    funcs = [("f%d" % i, 0x401000 + 16 * i, 16, 0) for i in range(n)]
    tab, fnoff = build_pclntab("go1.20", funcs, 0x800000, 0x401000, 0x401000, 1)
    names_len = sum(len(f[0]) + 1 for f in funcs)
    rep = b"crypto/tls.(*Conn).Read\0" * n
    tab = bytearray(tab)
    # Insert the repeated names right after the real ones and shift the later offsets.
    at = fnoff + names_len
    tab[at:at] = rep
    words = list(struct.unpack_from("<8Q", tab, 8))
    for k in range(4, 8):
        words[k] += len(rep)
    struct.pack_into("<8Q", tab, 8, *words)
    with open(os.path.join(outdir, "pclntab", "stress-repeated-name.pcln"), "wb") as f:
        f.write(tab)


def main():
    if sys.argv[1] == "stress":
        return stress(sys.argv[2])
    mode, src, js, outdir, prefix = sys.argv[1:6]
    info = json.load(open(js))
    os.makedirs(outdir, exist_ok=True)

    def put(name, data):
        with open(os.path.join(outdir, prefix + "-" + name), "wb") as f:
            f.write(data)

    native = info["pclntab"]["format"]
    fmts = ["go1.2", "go1.16", "go1.18", "go1.20"] if mode != "elf" or info["arch"] == "amd64" else [native]
    if mode == "elf":
        for fmt in fmts:
            for variant in ("plain", "nosections", "pie", "symtab"):
                if fmt == "go1.2" and variant != "plain":
                    continue
                put("%s-%s.elf" % (fmt, variant), make_elf(src, info, fmt, variant))
    elif mode == "pcln":
        funcs = hook_funcs(src, info)
        ts, fl, o = 0x401000, [], 0
        for name, code, args in funcs:
            fl.append((name, ts + o, align(len(code), 32), args))
            o += align(len(code), 32)
        for fmt in fmts:
            put(fmt + ".pcln", build_pclntab(fmt, fl, 0x800000, ts, ts if fmt != "go1.2" else 0, 1)[0])
        img = open(src, "rb").read()
        secs = elf_sections(img)
        if ".gopclntab" in secs:  # the real table's first 64 KiB (header + names; functab is cut off)
            _, off, size = secs[".gopclntab"]
            put("real-%s.pcln" % native, img[off:off + min(size, 65536)])
    elif mode == "bi":
        img = open(src, "rb").read()
        secs = elf_sections(img)
        if ".go.buildinfo" in secs:
            _, off, size = secs[".go.buildinfo"]
            put("real.bi", img[off:off + size])
        for inline in (True, False):
            seg = bytearray()
            build_buildinfo(info, inline, 0x10000000, seg)  # fuzz_buildinfo wraps at this vaddr
            put("synth-%s.bi" % ("inline" if inline else "ptr"), bytes(seg))


if __name__ == "__main__":
    main()
