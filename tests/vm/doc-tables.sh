#!/usr/bin/env bash
# tests/vm/doc-tables.sh: every mirror table line the documentation shows,
# one per line as "SOURCE<TAB>TABLE", for the guest test t-doctables.sh,
# which loads each into the real kernel.  A line is whatever follows
# `--table "` up to the closing quote, joined across the README's and the
# man page's line continuations (`\` and roff's `\e`).  Fails when a
# document that has shown table lines shows none: a reworded example must
# not silently leave the test with nothing to load.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

extract() { # FILE
	awk -v src="${1#"$top"/}" '
		{ gsub(/\\-/, "-"); gsub(/\\e$/, "\\") }
		cont { sub(/^[ \t]+/, " "); line = line $0 }
		!cont && /--table "/ { line = substr($0, index($0, "--table \"") + 9) }
		line != "" {
			if (line ~ /\\[ \t]*$/) { sub(/\\[ \t]*$/, "", line); cont = 1; next }
			if (index(line, "\"")) {
				line = substr(line, 1, index(line, "\"") - 1)
				gsub(/[ \t]+/, " ", line)
				if (line ~ / mirror userspace /) print src "\t" line
				line = ""; cont = 0
			} else { cont = 1 }
		}' "$1"
}

n=0
for f in README.md initramfs/dmulogd.8 docs/protocol.md; do
	out=$(extract "$top/$f")
	[ -n "$out" ] || { echo "doc-tables: no 'mirror userspace' table line found in $f" >&2; exit 1; }
	printf '%s\n' "$out"
	n=$((n + $(wc -l <<<"$out")))
done
[ "$n" -ge 3 ] || { echo "doc-tables: only $n table lines" >&2; exit 1; }
