#!/usr/bin/env bash
# The old name of scripts/update-generated.sh, which regenerates the completions and the
# man pages together.
exec "$(dirname "$0")/update-generated.sh" "$@"
