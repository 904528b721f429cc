#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed with `cargo install cargo-deb --locked`
# when missing) and prints the path of the .deb. What goes in it: [package.metadata.deb] in
# Cargo.toml.
#
# By default cargo-deb builds the release binary itself. Arguments are passed on to
# `cargo deb`, so the package can carry a binary built another way, e.g. the static one:
#   scripts/build-release.sh && scripts/package-deb.sh --no-build --target x86_64-unknown-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package-deb: installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked --quiet
fi
# cargo-deb prints the .deb's path last on stdout; its progress goes to stderr.
deb="$(cargo deb --locked "$@" | tail -n 1)"
if [[ ! -f "$deb" ]]; then
  echo "package-deb: cargo deb did not name a .deb (got: $deb)" >&2
  exit 1
fi
echo "$deb"
