#!/usr/bin/env bash
# Prints the host's target triple when binaries can be linked statically here (Linux with
# glibc's static library, libc.a, which Debian's libc6-dev installs); prints nothing
# otherwise. Used by install.sh, build-release.sh and package-deb.sh, so that all three
# make the same binary.
set -euo pipefail
host=$(rustc -vV | sed -n 's/^host: //p')
libc_a=$(cc -print-file-name=libc.a 2>/dev/null || true)
if [[ "$host" == *-linux-gnu && "$libc_a" == /* && -e "$libc_a" ]]; then
  echo "$host"
fi
