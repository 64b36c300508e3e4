#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run the whole
# stack in the foreground on the embedded defaults (SQLite, local disk, mail
# written to files) at http://127.0.0.1:8000. Ctrl-C stops everything.
# Arguments are passed to `safeshare up` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec ./build/bin/safeshare up "$@"
