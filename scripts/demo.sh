#!/usr/bin/env bash
# The main job end to end on embedded defaults — the same commands a user types.
set -euo pipefail
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }

step "real market bars from packaged sample data"
augur data sample
