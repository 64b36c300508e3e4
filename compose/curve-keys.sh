#!/usr/bin/env bash
# curve-keys.sh DIR -- the CurveZMQ keys of a safeshare deployment, laid out
# as the services read them (docs/security.md, "CurveZMQ between services"):
#
#   DIR/<name>/<name>.key_secret, <name>.key   one private dir per name (0700)
#   DIR/public/{auth,crypto,storage,mailer}.key
#   DIR/allow/auth/{gateway,auth}.key
#   DIR/allow/crypto/{gateway,crypto-worker,crypto}.key
#   DIR/allow/storage/{gateway,storage}.key
#   DIR/allow/mailer/{gateway,auth,mailer}.key
#
# for the names gateway auth crypto storage mailer crypto-worker. Each pair
# is made by `safeshare keys service-gen NAME --dir DIR/NAME` (secret 0600,
# public 0644). Idempotent: an existing pair is kept; what is missing is
# made; the copies in public/ and allow/ are (re)written from the pairs, each
# atomically (zauth re-reads an allow dir when it changes). Other files in
# public/ or allow/ (an operator's extra keys during a rotation) are left
# alone. A lone half of a pair is refused (exit 1): restore the other half,
# or remove both to make a new pair.
#
# Used by the compose stack's keys-init service (compose/init-keys.sh) and
# by the tests, outside containers; `safeshare` is taken from PATH.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
names="gateway auth crypto storage mailer crypto-worker"
# Who accepts whom (the contract's "who calls whom"; each service also
# accepts itself: its healthcheck runs with its own key).
allow_auth="gateway auth"
allow_crypto="gateway crypto-worker crypto"
allow_storage="gateway storage"
allow_mailer="gateway auth mailer"

umask 077
mkdir -p "$dir"

# copy SRC DEST: DEST becomes a 0644 copy of SRC, through a temp file and a
# rename, unless it is already the same.
copy_public() {
    local src=$1 dest=$2 tmp
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        return 0
    fi
    tmp=$(mktemp "$(dirname "$dest")/.tmp.XXXXXX")
    cat "$src" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$dest"
}

for n in $names; do
    d=$dir/$n
    mkdir -p "$d"
    chmod 0700 "$d"
    if [ -e "$d/$n.key" ] && [ -e "$d/$n.key_secret" ]; then
        echo "curve key $n: kept ($d/$n.key)"
    elif [ -e "$d/$n.key" ] || [ -e "$d/$n.key_secret" ]; then
        echo "curve-keys.sh: $d holds only half of the pair of $n: restore the" \
             "other half, or remove both to make a new pair" >&2
        exit 1
    else
        pub=$(safeshare keys service-gen "$n" --dir "$d")
        echo "curve key $n: created ($d/$n.key, public key $pub)"
    fi
done

umask 022
mkdir -p "$dir/public"
chmod 0755 "$dir/public"
for n in auth crypto storage mailer; do
    copy_public "$dir/$n/$n.key" "$dir/public/$n.key"
done
mkdir -p "$dir/allow"
chmod 0755 "$dir/allow"
for svc in auth crypto storage mailer; do
    mkdir -p "$dir/allow/$svc"
    chmod 0755 "$dir/allow/$svc"
    list=allow_$svc
    for n in ${!list}; do
        copy_public "$dir/$n/$n.key" "$dir/allow/$svc/$n.key"
    done
done
echo "curve keys in $dir: public/ and allow/ up to date"
