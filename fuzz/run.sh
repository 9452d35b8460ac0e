#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECS seconds (default 300)
# with cargo-fuzz (libFuzzer), installing cargo-fuzz from crates.io when it
# is missing. With a nightly toolchain the targets run under AddressSanitizer;
# without one, on stable with coverage but no sanitizer (-s none).
# Findings land in fuzz/artifacts/<target>/ and make this script fail;
# replay one with: cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECS:-300}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  run=(cargo +nightly fuzz run)
else
  echo "fuzz: no nightly toolchain; running on stable without a sanitizer"
  run=(cargo fuzz run -s none)
fi
for target in decode dispatch; do
  echo "fuzz: $target for ${secs}s"
  "${run[@]}" "$target" -- -max_total_time="$secs" -max_len=4096 -print_final_stats=1
done
