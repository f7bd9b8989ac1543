#!/usr/bin/env bash
# Print the Debian mirror this machine's apt already uses (the first entry
# that is not a security suite), for debootstrap. $VUB_DEBIAN_MIRROR wins.
# Used by tools/provision-qemu-vfio-user.sh (trixie root) and
# tools/test-package.sh (bookworm root); no mirror is written in the project.
set -euo pipefail
if [ -n "${VUB_DEBIAN_MIRROR:-}" ]; then echo "$VUB_DEBIAN_MIRROR"; exit 0; fi
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # deb822 stanzas: take URIs from a stanza whose Suites is not *-security.
  m=$(awk '
    /^[[:space:]]*$/ { if (u != "" && s !~ /security/) { print u; exit } u=""; s=""; next }
    /^URIs:/   { u=$2 }
    /^Suites:/ { s=$0 }
    END { if (u != "" && s !~ /security/) print u }' "$f" | head -n1)
  if [ -n "$m" ]; then echo "$m"; exit 0; fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  m=$(awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i+1) !~ /security/) { print $i; exit } }' "$f")
  if [ -n "$m" ]; then echo "$m"; exit 0; fi
done
echo "debian-mirror: no Debian mirror found in /etc/apt; set VUB_DEBIAN_MIRROR" >&2
exit 1
