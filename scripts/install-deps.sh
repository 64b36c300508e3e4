#!/usr/bin/env bash
# Installs what safeshare needs to build and run (and, with --test, to test) on
# Debian 12. Idempotent: packages already present are not fetched again.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

build_pkgs=(
    ca-certificates git gcc make cmake pkg-config
    libzmq3-dev libczmq-dev libssl-dev libpq-dev libsqlite3-dev
    libcivetweb-dev libjwt-dev libjansson-dev libesmtp-dev
    libcurl4-openssl-dev libargon2-dev libprotobuf-c-dev protobuf-c-compiler
    libcmocka-dev
)
# Tests speak HTTP with curl and drive the flow from bash + python3.
# postgresql: the server for the private test cluster (pg-test-cluster.sh).
# python3-cryptography: AES-GCM for the independent format decryptor
# (tests/system/format_decrypt.py, run with /usr/bin/python3).
# awscli: an independent S3 client for the S3 system tests (/usr/bin/aws).
# python3-aiosmtpd: the SMTP server of the mail tests (scripts/smtp-test-server.sh).
# python3-jsonschema: validates real answers against docs/openapi.json
# (tests/system/test_openapi.py, run with /usr/bin/python3).
# docker-compose: validates compose/docker-compose.yml (`config -q`) in the
# compose test; no Docker engine is needed for that. python3-yaml: that test
# reads the resolved config.
# nginx-light: the compose stack's TLS front (compose/nginx/safeshare.conf)
# is tested against a real nginx.
# sqlite3: the documented SQLite backup (tests/system/test_backup.py).
test_pkgs=(curl python3 python3-cryptography procps iproute2 openssl clang-format
           postgresql awscli python3-aiosmtpd python3-jsonschema
           docker-compose python3-yaml nginx-light sqlite3)

pkgs=("${build_pkgs[@]}")
[ $want_test = 1 ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
fi

# The S3 test server (scripts/s3-test-server.sh) is moto on the machine's
# python3, which checks SigV4 signatures and is not installed from a
# registry. Only where it is missing: npm s3rver, pinned (it does not
# check signatures; the script says so when it runs).
if [ $want_test = 1 ] && ! python3 -c 'import moto.server, boto3' >/dev/null 2>&1 \
    && [ "$(s3rver --version 2>/dev/null || true)" != 3.7.1 ]; then
    echo "install-deps: moto is missing; installing npm s3rver@3.7.1 (no signature checks)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    if ! command -v npm >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            --no-install-recommends --no-upgrade npm >/dev/null
    fi
    $SUDO npm install -g --no-audit --no-fund s3rver@3.7.1 >/dev/null
fi

# newman, the runner of the Postman collection (tests/postman, ctest
# system_postman): pinned in tests/postman/package.json + package-lock.json
# and installed there with `npm ci` (node_modules is git-ignored). Debian's
# nodejs + npm when npm is missing. Reinstalled only when the lock changed.
if [ $want_test = 1 ]; then
    if ! command -v npm >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        echo "install-deps: installing nodejs npm (for newman)"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            --no-install-recommends --no-upgrade nodejs npm >/dev/null
    fi
    pm_dir="$(cd "$(dirname "$0")/../tests/postman" && pwd)"
    pm_lock=$(sha256sum "$pm_dir/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$pm_dir/node_modules/.safeshare-lock" 2>/dev/null || true)" != "$pm_lock" ] \
        || ! "$pm_dir/node_modules/.bin/newman" --version >/dev/null 2>&1; then
        echo "install-deps: npm ci in tests/postman (newman)"
        (cd "$pm_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$pm_lock" >"$pm_dir/node_modules/.safeshare-lock"
    fi
fi
