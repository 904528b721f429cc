#!/usr/bin/env bash
# Regenerates the committed shell completions from the CLI definition.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin vapora
bin="${CARGO_TARGET_DIR:-target}/debug/vapora"
"$bin" completions bash > completions/vapora.bash
"$bin" completions zsh > completions/_vapora
"$bin" completions fish > completions/vapora.fish
echo "completions/ regenerated"
