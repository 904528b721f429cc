#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed with `cargo install cargo-deb --locked`
# when missing) and prints the path of the .deb. What goes in it: [package.metadata.deb] in
# Cargo.toml.
#
# The package carries the binary scripts/install.sh would install: statically linked where
# glibc's static library is (scripts/build-release.sh), the ordinary build elsewhere.
# Arguments are passed on to `cargo deb` (e.g. `--output DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package-deb: installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked --quiet
fi
scripts/build-release.sh >/dev/null
target=$(scripts/static-target.sh)
how=(--no-build)
if [[ -n "$target" ]]; then
  how+=(--target "$target")
fi
# cargo-deb prints the .deb's path last on stdout; its progress goes to stderr.
deb="$(cargo deb --locked "${how[@]}" "$@" | tail -n 1)"
if [[ ! -f "$deb" ]]; then
  echo "package-deb: cargo deb did not name a .deb (got: $deb)" >&2
  exit 1
fi
echo "$deb"
