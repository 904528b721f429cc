#!/usr/bin/env bash
# Regenerates what is committed but made from the CLI definition (src/client/cli.rs): the
# shell completions in completions/ and the man pages in man/. tests/completions.rs and
# tests/manpages.rs fail when either is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin vapora --example manpages
bin="${CARGO_TARGET_DIR:-target}/debug/vapora"
"$bin" completions bash > completions/vapora.bash
"$bin" completions zsh > completions/_vapora
"$bin" completions fish > completions/vapora.fish
# The pages of subcommands that are gone go too.
mkdir -p man
rm -f man/*.1
"${CARGO_TARGET_DIR:-target}/debug/examples/manpages" man
echo "completions/ and man/ regenerated"
