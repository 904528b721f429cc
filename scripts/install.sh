#!/usr/bin/env bash
# Installs vapora (and vapora-bench) with `cargo install --path .`, into ~/.cargo/bin unless
# told otherwise (arguments go to cargo install, e.g. `--root /usr/local`).
#
# Where glibc's static library is (scripts/static-target.sh), the binary is linked
# statically: a one-shot command then starts without the dynamic loader, level with
# task-spooler instead of 0.8 ms behind it (BENCHMARKS.md). Elsewhere (musl, macOS, no
# libc.a) it is the ordinary build.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(scripts/static-target.sh)
if [[ -n "$target" ]]; then
  # With --target, RUSTFLAGS reach only the binaries, not build scripts or proc macros
  # (which cannot be linked statically).
  echo "install: statically linked for $target" >&2
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    exec cargo install --path . --locked --target "$target" "$@"
fi
echo "install: no static C library here; installing the dynamically linked build" >&2
exec cargo install --path . --locked "$@"
