#!/usr/bin/env bash
# Installs vapora (and vapora-bench) with `cargo install --path .`, into ~/.cargo/bin unless
# told otherwise (arguments go to cargo install, e.g. `--root /usr/local`).
#
# On Linux with glibc's static library (Debian: libc6-dev, there with any C compiler), the
# binary is linked statically: a one-shot command then starts without the dynamic loader,
# 1.0 ms instead of 1.8 ms for `vapora task add` on the project's machine, level with
# task-spooler (BENCHMARKS.md). Elsewhere (musl, macOS, no libc.a) it is the ordinary build.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
libc_a=$(cc -print-file-name=libc.a 2>/dev/null || true)
if [[ "$host" == *-linux-gnu && "$libc_a" == /* && -e "$libc_a" ]]; then
  # With --target, RUSTFLAGS reach only the binaries, not build scripts or proc macros
  # (which cannot be linked statically).
  echo "install: statically linked for $host" >&2
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    exec cargo install --path . --locked --target "$host" "$@"
fi
echo "install: no static C library for $host; installing the dynamically linked build" >&2
exec cargo install --path . --locked "$@"
