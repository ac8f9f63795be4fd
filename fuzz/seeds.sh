#!/bin/sh
# Build the seed corpora of every fuzz target from the repository's
# conformance corpora (corpus/pdu/*.acorn, corpus/sessions/*.scenario),
# deterministically: the same files in, the same seeds out (files are taken
# in sorted order, seeds are named by what they hold).
#
# Usage (from the repository root or from fuzz/):  sh fuzz/seeds.sh
# Writes fuzz/corpus/<target>/seed-*; other files there (what a fuzzing run
# added) are left alone. See README.md, "Fuzzing", for each layout.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$here/corpus"
export LC_ALL=C

pdus=$(ls "$root"/corpus/pdu/*.acorn | sort)
scenarios=$(ls "$root"/corpus/sessions/*.scenario | sort)

# One byte given as a number 0..255.
byte() { printf "\\$(printf '%03o' "$1")"; }
# A 16-bit little-endian length.
u16le() { byte $(($1 % 256)); byte $(($1 / 256 % 256)); }
size() { wc -c <"$1" | tr -d ' '; }

for t in parse_datagram stream_chunks roundtrip seqlist endpoint; do
    mkdir -p "$out/$t"
    rm -f "$out/$t"/seed-*
done

# parse_datagram: one flag byte (bit 0: bare LF allowed), then the case.
for f in $pdus; do
    name=$(basename "$f" .acorn)
    case "$name" in *-lenient-*) flag=1 ;; *) flag=0 ;; esac
    { byte $flag; cat "$f"; } >"$out/parse_datagram/seed-$name"
done

# stream_chunks: flags, four limit-seed bytes, the count of chunk sizes and
# the sizes, then the stream: each accepted case followed by the next one
# (in sorted order), fed whole and byte by byte; every fourth one also in
# chunks of 1, 7 and 64 bytes.
accepted=$(ls "$root"/corpus/pdu/accept-*.acorn | sort)
set -- $accepted
first=$1
i=0
for f in $accepted; do
    shift
    next=${1:-$first}
    name=$(basename "$f" .acorn)
    case "$name" in *-lenient-*) flag=1 ;; *) flag=0 ;; esac
    {
        byte $flag; byte 0; byte 0; byte 0; byte 0
        if [ $((i % 4)) -eq 3 ]; then byte 3; byte 1; byte 7; byte 64; else byte 0; fi
        cat "$f" "$next"
    } >"$out/stream_chunks/seed-$name"
    i=$((i + 1))
done
# Rejected cases alone: the framing errors.
for f in "$root"/corpus/pdu/reject-*.acorn; do
    name=$(basename "$f" .acorn)
    { byte 0; byte 0; byte 0; byte 0; byte 0; byte 0; cat "$f"; } >"$out/stream_chunks/seed-$name"
done

# roundtrip takes structured input (arbitrary's derive); the cases as raw
# bytes decode to varied PDUs and headers.
for f in $pdus; do
    cp "$f" "$out/roundtrip/seed-$(basename "$f" .acorn)"
done

# seqlist: one Parse record per seq-list value found in the corpora
# (Need-Seq, Ignore-Seq, Seq, Ack-Seq): 05, the item limit (15), the length,
# the text. Then the same values as a run of inserts, one file for all.
values=$(cat $pdus $scenarios |
    sed -n 's/^[>< ?]*\(Need-Seq\|Ignore-Seq\|Seq\|Ack-Seq\):[ \t]*\([0-9., \t]*\)\r\{0,1\}$/\2/p' |
    sed 's/[ \t]*$//' | grep . | sort -u)
n=0
echo "$values" | while IFS= read -r v; do
    len=$(printf '%s' "$v" | wc -c | tr -d ' ')
    [ "$len" -le 255 ] || continue
    n=$((n + 1))
    { byte 5; byte 15; byte "$len"; printf '%s' "$v"; } >"$out/seqlist/seed-parse-$(printf '%03d' $n)"
done
# Inserts, ranges and cuts over both ends of the domain.
{
    for k in 3 5 4 9 100 127 64 0 1 2; do byte 0; byte $k; done
    byte 1; byte 10; byte 20; byte 1; byte 120; byte 70; byte 1; byte 30; byte 90
    byte 2; byte 4; byte 3; byte 2; byte 2; byte 66; byte 4; byte 3; byte 1; byte 2; byte 5; byte 6; byte 127; byte 0
} >"$out/seqlist/seed-ops"

# endpoint: a flag byte (bits 0-3: which sources echo the engine's ids,
# bit 4: tight limits), then records (see fuzz_targets/endpoint.rs):
# 00 <source> <len16> <datagram> delivers a datagram, 02 <ms16> lets time
# pass. Each PDU case alone from source 0 (no echo, default limits); then
# each scenario's peer PDUs in order, with time passing between them
# (source 0 echoes; every other scenario with the tight limits).
for f in $pdus; do
    name=$(basename "$f" .acorn)
    { byte 0; byte 0; byte 0; u16le "$(size "$f")"; cat "$f"; byte 2; u16le 500; } >"$out/endpoint/seed-pdu-$name"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for f in $scenarios; do
    name=$(basename "$f" .scenario)
    flags=$((1 + 16 * (i % 2)))
    i=$((i + 1))
    # Split the scenario's `>` blocks into one file each, CRLF line ends,
    # an empty line closing the head when the block has none.
    rm -f "$tmp"/pdu-*
    awk -v dir="$tmp" '
        function flush() {
            if (open) { if (!blank) printf "\r\n" > file; close(file); open = 0 }
        }
        /^>/ {
            if (!open) { k++; file = sprintf("%s/pdu-%03d", dir, k); open = 1; blank = 0; body = 0 }
            line = substr($0, 2); sub(/^ /, "", line)
            if (line == "" && !blank) { blank = 1; printf "\r\n" > file; next }
            if (blank) { if (body) printf "\r\n" > file; printf "%s", line > file; body = 1 }
            else printf "%s\r\n", line > file
            next
        }
        { flush() }
        END { flush() }
    ' "$f"
    {
        byte $flags
        for p in "$tmp"/pdu-*; do
            [ -e "$p" ] || continue
            byte 0; byte 0; u16le "$(size "$p")"; cat "$p"
            byte 2; u16le 50
        done
        byte 2; u16le 30000
    } >"$out/endpoint/seed-scenario-$name"
done

for t in parse_datagram stream_chunks roundtrip seqlist endpoint; do
    echo "$t: $(ls "$out/$t" | grep -c '^seed-') seeds"
done
