# debian-archive.sh — sourced by scripts that fetch from Debian's archive through a private apt
# configuration (go-matrix.sh, arm64-root.sh): the archive's address is read from the machine's own
# apt sources, never written in the scripts. Needs a `die` function in the sourcing script.

# First URIs: of a deb822 stanza in /etc/apt/sources.list.d/*.sources that points
# at a "debian" archive and is not the security archive; else the first plain
# "deb " line of /etc/apt/sources.list.
archive_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # Stanzas are separated by blank lines (awk paragraph mode).
    uri=$(awk 'BEGIN { RS = "" }
      {
        uris = ""; suites = ""
        n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          if (lines[i] ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", lines[i]); uris = lines[i] }
          if (lines[i] ~ /^Suites:/) { suites = lines[i] }
        }
        if (suites ~ /-security/) next
        m = split(uris, u, /[ \t]+/)
        for (j = 1; j <= m; j++)
          if (u[j] ~ /debian\/?$/ && u[j] !~ /security/) { print u[j]; exit }
      }' "$f")
    if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
  done
  if [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {
        for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; exit }
      }' /etc/apt/sources.list | grep -v security | head -n1 || true)
    if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
  fi
  die "no Debian archive URI found in the system's apt sources"
}

