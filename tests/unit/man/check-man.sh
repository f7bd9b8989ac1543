#!/usr/bin/env bash
# Keeps a hand-written man page true (ctest label "unit", tests/unit/man).
#
#   check-man.sh PAGE PROGRAM [ARGS...]
#       PROGRAM ARGS (normally --help) prints the program's options. Every
#       long option in that output must have an entry in PAGE (an option in
#       the tag line of a .TP paragraph), and every long option PAGE names,
#       in an entry or in the text, must be in that output.
#   check-man.sh --keys PAGE MARKDOWN
#       Every key in the first column of MARKDOWN's tables (| `key` | ...)
#       must have an entry in PAGE (".TP" then ".B key"), and the other way
#       round.
#
# On a difference it prints which names are missing where, and exits 1.
set -euo pipefail

# The page as plain words: roff escapes for minus signs, fonts, zero-width
# and quotes removed; comment lines dropped.
page_text() {
  sed -e '/^\.\\"/d' -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' \
      -e 's/\\&//g' -e 's/\\(dq/"/g' -e 's/\\(aq/'"'"'/g' "$1"
}
# The line after every .TP: the paragraph's tag.
page_tags() { page_text "$1" | awk 'tp { print; tp = 0; next } /^\.TP/ { tp = 1 }'; }
long_opts() { grep -oE -- '--[a-z0-9][a-z0-9-]*[a-z0-9]' | sort -u || true; }
words() { printf '%s\n' "$@" | sed '/^$/d' | paste -sd' '; }

report() { # report PAGE WHAT-A WHAT-B LIST-A-NOT-B LIST-B-NOT-A
  local page=$1 a=$2 b=$3 a_only=$4 b_only=$5
  if [ -z "$a_only" ] && [ -z "$b_only" ]; then
    echo "$page: agrees with $a"
    return 0
  fi
  echo "$page does not agree with $a:"
  [ -z "$a_only" ] || echo "  in $a, but no entry in $page: $(words $a_only)"
  [ -z "$b_only" ] || echo "  $b, but not in $a: $(words $b_only)"
  return 1
}

if [ "${1:-}" = --keys ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --keys PAGE MARKDOWN" >&2; exit 2; }
  page=$2 md=$3
  if ! [ -r "$page" ] || ! [ -r "$md" ]; then echo "$0: cannot read $page or $md" >&2; exit 2; fi
  doc_keys=$(sed -nE 's/^\| `([a-z_]+)` \|.*/\1/p' "$md" | sort -u)
  page_keys=$(page_tags "$page" | sed -nE 's/^\.B ([a-z_]+)$/\1/p' | sort -u)
  [ -n "$doc_keys" ] || { echo "$md: no keys found in its tables" >&2; exit 2; }
  report "$page" "$md's tables" "entries in the page" \
    "$(comm -23 <(echo "$doc_keys") <(echo "$page_keys"))" \
    "$(comm -13 <(echo "$doc_keys") <(echo "$page_keys"))"
  exit
fi

[ $# -ge 2 ] || { echo "usage: $0 PAGE PROGRAM [ARGS...]" >&2; exit 2; }
page=$1; shift
[ -r "$page" ] || { echo "$0: cannot read $page" >&2; exit 2; }
help=$("$@" 2>&1) || { echo "$0: '$*' failed:"; printf '%s\n' "$help"; exit 1; }
help_opts=$(long_opts <<<"$help")
[ -n "$help_opts" ] || { echo "$0: '$*' printed no long option:"; printf '%s\n' "$help"; exit 1; }
entry_opts=$(page_tags "$page" | long_opts)
named_opts=$(page_text "$page" | long_opts)
report "$page" "'$(basename "$1")${2:+ ${*:2}}'" "named in the page" \
  "$(comm -23 <(echo "$help_opts") <(echo "$entry_opts"))" \
  "$(comm -13 <(echo "$help_opts") <(echo "$named_opts"))"
