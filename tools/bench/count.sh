#!/bin/sh
# Instructions per vIOMMU cycle and per trapped read, exact and repeatable
# on a loaded machine (docs/performance.md, "fifth round"): the bridge
# (--sim=edu) and vfio-user-cycles run under callgrind twice, once with N1
# and once with N2 operations; the difference divided by N2 - N1 is what
# one operation costs each process in user space (its libc included, the
# kernel not), start-up and negotiation cancelled out.
#
#   tools/bench/count.sh [--build DIR] [--bridge PATH] [--top K] [N1 N2]
#
# Prints, per cycle (one DMA_MAP and one DMA_UNMAP) and per read (one
# 4-byte REGION_READ of config space): the bridge's total, the simulator's
# part of it (the simulator's dma_map, dma_unmap and region_read, inclusive), the
# client's total and its vu_client calls inclusive; with --top K the K
# functions of the bridge whose own cost per cycle is largest.
set -eu

build=build
bridge=
top=0
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --bridge) bridge=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    --*) echo "count.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
n1=${1:-2000}
n2=${2:-12000}
[ -n "$bridge" ] || bridge=$build/bridge/vfio-user-bridge
client=$build/tools/bench/vfio-user-cycles
for f in "$bridge" "$client"; do
    [ -x "$f" ] || { echo "count.sh: $f not built" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "count.sh: valgrind not installed" >&2; exit 1; }

dir=$(mktemp -d /tmp/vub-count.XXXXXX)
bpid=
cleanup() {
    [ -z "$bpid" ] || kill "$bpid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# one run: $1 tag, $2 cycles, $3 reads
run() {
    sock=$dir/$1.sock
    valgrind --tool=callgrind --callgrind-out-file="$dir/bridge-$1.out" \
        "$bridge" --sim=edu --socket "$sock" >"$dir/bridge-$1.log" 2>&1 &
    bpid=$!
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1))
        [ $i -lt 600 ] || { echo "count.sh: the bridge did not start" >&2; cat "$dir/bridge-$1.log" >&2; exit 1; }
        sleep 0.1
    done
    valgrind --tool=callgrind --callgrind-out-file="$dir/client-$1.out" \
        "$client" "$sock" "$2" "$3" >"$dir/client-$1.log" 2>&1 ||
        { echo "count.sh: the client failed" >&2; cat "$dir/client-$1.log" >&2; exit 1; }
    kill -TERM "$bpid"
    wait "$bpid" || true
    bpid=
}

run c1 "$n1" 0
run c2 "$n2" 0
run r1 0 "$n1"
run r2 0 "$n2"

# Inclusive or own cost of the functions matching $3 in file $1
# (callgrind_annotate lines "  1,234 (..%)  file:function [obj]").
sum() {
    callgrind_annotate $2 --auto=no --threshold=100 "$1" 2>/dev/null |
        awk -v pat="$3" '
            /PROGRAM TOTALS/ { if (pat == "TOTAL") { gsub(",", "", $1); print $1; done = 1; exit } }
            pat != "TOTAL" && $0 ~ pat { v = $1; gsub(",", "", v); s += v }
            END { if (!done) print s + 0 }'
}

per() {   # $1 file1 $2 file2 $3 opts $4 pattern
    a=$(sum "$1" "$3" "$4")
    b=$(sum "$2" "$3" "$4")
    echo $(( (b - a) / (n2 - n1) ))
}

# (a name may carry a suffix from link-time optimisation: sim_dma_map.lto_priv.0)
sim=':sim_dma_map[ .]|:sim_dma_unmap[ .]|:sim_region_read[ .]'
echo "instructions per operation (callgrind, $n1 vs $n2 operations; bridge $bridge)"
printf '%-36s %10s %10s\n' "" "cycle" "read"
printf '%-36s %10s %10s\n' "bridge, total" \
    "$(per "$dir/bridge-c1.out" "$dir/bridge-c2.out" "" TOTAL)" \
    "$(per "$dir/bridge-r1.out" "$dir/bridge-r2.out" "" TOTAL)"
printf '%-36s %10s %10s\n' "  of which the simulator (inclusive)" \
    "$(per "$dir/bridge-c1.out" "$dir/bridge-c2.out" --inclusive=yes "$sim")" \
    "$(per "$dir/bridge-r1.out" "$dir/bridge-r2.out" --inclusive=yes "$sim")"
printf '%-36s %10s %10s\n' "client, total" \
    "$(per "$dir/client-c1.out" "$dir/client-c2.out" "" TOTAL)" \
    "$(per "$dir/client-r1.out" "$dir/client-r2.out" "" TOTAL)"
printf '%-36s %10s %10s\n' "  of which vu_client calls (incl.)" \
    "$(per "$dir/client-c1.out" "$dir/client-c2.out" --inclusive=yes ':vu_client_dma_map[ .]|:vu_client_dma_unmap[ .]')" \
    "$(per "$dir/client-r1.out" "$dir/client-r2.out" --inclusive=yes ':vu_client_region_read[ .]')"

if [ "$top" -gt 0 ]; then
    echo
    echo "bridge, own instructions per cycle by function (largest $top):"
    for f in c1 c2; do
        callgrind_annotate --auto=no --threshold=100 "$dir/bridge-$f.out" 2>/dev/null |
            awk '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ { v = $1; gsub(",", "", v); sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, ""); print v "\t" $0 }' \
            >"$dir/fn-$f.txt"
    done
    awk -F '\t' -v n="$((n2 - n1))" 'NR == FNR { a[$2] = $1; next } { d = ($1 - a[$2]) / n; if (d >= 1) printf "%8.0f  %s\n", d, $2 }' \
        "$dir/fn-c1.txt" "$dir/fn-c2.txt" | sort -rn | head -n "$top"
fi
