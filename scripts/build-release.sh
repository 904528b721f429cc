#!/usr/bin/env bash
# Builds the release binaries (vapora, vapora-bench) as scripts/install.sh installs them
# and prints the directory they are in.
#
# Where glibc's static library is (scripts/static-target.sh), they are linked statically
# (static-pie): a one-shot command then skips the dynamic loader, which took a third of its
# instructions and most of the 0.8 ms it lagged behind task-spooler (BENCHMARKS.md).
# Elsewhere, an ordinary release build.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(scripts/static-target.sh)
if [[ -n "$target" ]]; then
  # With --target, RUSTFLAGS reach only the binaries, not build scripts or proc macros.
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --bins --target "$target" --quiet
  echo "$PWD/${CARGO_TARGET_DIR:-target}/$target/release"
else
  cargo build --release --locked --bins --quiet
  echo "$PWD/${CARGO_TARGET_DIR:-target}/release"
fi
