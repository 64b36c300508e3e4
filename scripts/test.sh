#!/usr/bin/env bash
# Quick start, command 2: install what the tests need, build, run every
# test: once in a regular build and once under AddressSanitizer +
# UndefinedBehaviorSanitizer, then the format check. Exits non-zero on any
# failure. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
jobs=$(nproc)
status=0

# One private PostgreSQL cluster for both suites: the pg_ tests (cm_db,
# and the auth/storage SQL) run against it and fail without it.
pg_dir=$(mktemp -d /tmp/safeshare-pg-XXXXXX)
pg_stop() {
    ./scripts/pg-test-cluster.sh stop "$pg_dir" || true
    rm -rf "$pg_dir"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pg_port=$(free_port)
# One S3 API server too (moto, which checks SigV4 signatures; s3rver,
# which does not, only where moto is missing): the *_s3 tests and the
# S3 system tests use it and fail without it. Its env lines
# (SAFESHARE_TEST_S3_*) are exported, and kept in $s3_dir/env.
s3_dir=$(mktemp -d /tmp/safeshare-s3-XXXXXX)
test_peers_stop() {
    ./scripts/s3-test-server.sh stop "$s3_dir" || true
    rm -rf "$s3_dir"
    pg_stop
}
trap test_peers_stop EXIT
SAFESHARE_TEST_PG_URL=$(./scripts/pg-test-cluster.sh start "$pg_dir" "$pg_port")
export SAFESHARE_TEST_PG_URL
echo "==== PostgreSQL test cluster on 127.0.0.1:$pg_port ($pg_dir)"
s3_port=$(free_port)
./scripts/s3-test-server.sh start "$s3_dir" "$s3_port" >/dev/null
set -a
# shellcheck disable=SC1091
. "$s3_dir/env"
set +a
if [ "$SAFESHARE_TEST_S3_SIGNED" = 1 ]; then
    s3_signed="SigV4 signatures checked"
else
    s3_signed="SigV4 signatures NOT checked (the S3 tests print NOT CHECKED lines)"
fi
echo "==== S3 test server: $SAFESHARE_TEST_S3_SERVER, $s3_signed," \
     "on $SAFESHARE_TEST_S3_ENDPOINT ($s3_dir)"

run_suite() {  # build dir, extra cmake args...
    local dir=$1; shift
    echo "==== build $dir $*"
    cmake -S . -B "$dir" "$@" >/dev/null
    mkdir -p "$dir"
    if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
        grep -E 'error|warning' "$dir/build.log" | head -50
        tail -20 "$dir/build.log"
        echo "build of $dir failed"
        return 1
    fi
    echo "==== ctest $dir"
    local rc=0
    ctest --test-dir "$dir" --output-on-failure -j2 --timeout 600 || rc=1
    # What the S3 peer could not show (s3rver): listed, never hidden.
    grep -h '^NOT CHECKED on' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null |
        sort -u || true
    # The Postman run's summary from newman's report, shown passed or not.
    awk '/^[0-9]+\/[0-9]+ Testing: system_postman$/ {on = 1}
         on && /^newman: / {print "system_postman " $0}
         on && /^[0-9]+ passed, [0-9]+ failed$/ {print "system_postman, newman assertions: " $0; on = 0}' \
        "$dir/Testing/Temporary/LastTest.log" 2>/dev/null || true
    return $rc
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
# Leak checking stays on: our code must not leak. abort_on_error gives
# a core-style failure instead of a silent non-zero exit.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DSAFESHARE_SANITIZE=ON || status=1

echo "==== clang-format check"
if ! git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror; then
    echo "clang-format: the files above need formatting (clang-format -i FILE)"
    status=1
fi
exit $status
