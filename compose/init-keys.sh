#!/usr/bin/env bash
# init-keys.sh CURVE_DIR KEK_DIR JWT_DIR -- the compose stack's keys-init
# service: makes whatever key is missing, keeps every key that exists, so it
# runs before every `docker compose up` without changing anything twice.
#
#   CURVE_DIR  the CurveZMQ keys, by compose/curve-keys.sh
#   KEK_DIR    kek.ring, the key-encryption keys: only the crypto broker
#              (and the operator's `safeshare keys ...`) mounts it
#   JWT_DIR    jwt-es256.pem / .pub, the access-token signing pair: only
#              auth mounts it
#
# The KEK ring and the JWT pair are made by `safeshare keys generate`, which
# writes both into one key directory; they are kept apart here so that auth
# never sees a KEK: generate into a fresh 0700 directory inside KEK_DIR, move
# the ring into KEK_DIR (a rename) if it has none, copy the pair into JWT_DIR
# if it has none, and remove the rest. A lone half of the JWT pair is refused
# (exit 1), as `safeshare keys generate` refuses it. `safeshare` is taken
# from PATH; curve-keys.sh from this script's directory.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 CURVE_DIR KEK_DIR JWT_DIR" >&2
    exit 2
fi
curve_dir=$1 kek_dir=$2 jwt_dir=$3
here=$(cd "$(dirname "$0")" && pwd)

"$here/curve-keys.sh" "$curve_dir"

umask 077
mkdir -p "$kek_dir" "$jwt_dir"
chmod 0700 "$kek_dir" "$jwt_dir"
have_ring=0 have_jwt=0
[ -e "$kek_dir/kek.ring" ] && have_ring=1
if [ -e "$jwt_dir/jwt-es256.pem" ] && [ -e "$jwt_dir/jwt-es256.pub" ]; then
    have_jwt=1
elif [ -e "$jwt_dir/jwt-es256.pem" ] || [ -e "$jwt_dir/jwt-es256.pub" ]; then
    echo "init-keys.sh: $jwt_dir holds only half of the JWT signing pair: restore" \
         "the other half, or remove both to make a new pair (which signs every" \
         "user out)" >&2
    exit 1
fi
if [ $have_ring = 1 ] && [ $have_jwt = 1 ]; then
    echo "KEK ring $kek_dir/kek.ring kept; JWT signing pair in $jwt_dir kept"
    exit 0
fi

tmp=$(mktemp -d "$kek_dir/.init.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The ring is for the crypto broker's file alone: never from the environment.
env -u SAFESHARE_KEK_RING SAFESHARE_KEY_DIR="$tmp" safeshare keys generate >/dev/null
if [ $have_ring = 0 ]; then
    mv "$tmp/kek.ring" "$kek_dir/kek.ring"
    echo "KEK ring written to $kek_dir/kek.ring"
else
    echo "KEK ring $kek_dir/kek.ring kept"
fi
if [ $have_jwt = 0 ]; then
    # Each half through a temp file and a rename: never half a key file.
    cp "$tmp/jwt-es256.pub" "$jwt_dir/.jwt-es256.pub.tmp"
    chmod 0644 "$jwt_dir/.jwt-es256.pub.tmp"
    mv "$jwt_dir/.jwt-es256.pub.tmp" "$jwt_dir/jwt-es256.pub"
    cp "$tmp/jwt-es256.pem" "$jwt_dir/.jwt-es256.pem.tmp"
    chmod 0600 "$jwt_dir/.jwt-es256.pem.tmp"
    mv "$jwt_dir/.jwt-es256.pem.tmp" "$jwt_dir/jwt-es256.pem"
    echo "JWT signing pair written to $jwt_dir/jwt-es256.pem (public $jwt_dir/jwt-es256.pub)"
else
    echo "JWT signing pair in $jwt_dir kept"
fi
