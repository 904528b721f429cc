#!/usr/bin/env bash
# Builds the release binaries (vapora, vapora-bench) and prints the directory they are in.
#
# On x86_64 Linux with glibc's static library, they are linked statically (static-pie):
# a one-shot command then skips the dynamic loader's symbol lookups, which took a third of
# its instructions and about 1 ms of its 2-3 ms (BENCHMARKS.md). Elsewhere, an ordinary
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "$(uname -m)" == x86_64 && -e /usr/lib/x86_64-linux-gnu/libc.a ]]; then
  # With --target, RUSTFLAGS reach only the binaries, not build scripts or proc macros.
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --bins --target x86_64-unknown-linux-gnu --quiet
  echo "$PWD/target/x86_64-unknown-linux-gnu/release"
else
  cargo build --release --locked --bins --quiet
  echo "$PWD/target/release"
fi
