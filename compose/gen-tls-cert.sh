#!/bin/sh
# Self-signed TLS certificate for nginx in front of the gateway, for local
# use and tests (a real deployment uses a certificate from a CA, same
# file names).
#
#   compose/gen-tls-cert.sh [--force] OUTDIR [HOSTNAME]
#
# Writes OUTDIR/safeshare.crt (0644, PEM, EC P-256, 365 days) and
# OUTDIR/safeshare.key (0600). Subject alternative names: localhost,
# 127.0.0.1, ::1 and HOSTNAME (a DNS name or an IP address; default
# localhost). Clients trust the certificate by using it as their CA file
# (curl --cacert OUTDIR/safeshare.crt). Existing files are kept (exit 0)
# unless --force; one without the other is an error. Needs openssl.
set -eu

usage() {
    echo "usage: $0 [--force] OUTDIR [HOSTNAME]" >&2
    exit 2
}

force=0
outdir=
host=
for arg in "$@"; do
    case $arg in
    --force) force=1 ;;
    -*) usage ;;
    *)
        if [ -z "$outdir" ]; then
            outdir=$arg
        elif [ -z "$host" ]; then
            host=$arg
        else
            usage
        fi
        ;;
    esac
done
[ -n "$outdir" ] || usage
[ -n "$host" ] || host=localhost

# HOSTNAME goes into the openssl configuration below: only the characters
# of a DNS name or an IP address get there.
case $host in
*[!A-Za-z0-9.:-]* | -* | .*)
    echo "$0: invalid HOSTNAME '$host' (a DNS name or an IP address)" >&2
    exit 2
    ;;
esac
case $host in
localhost | 127.0.0.1 | ::1) san_host= ;;
*)
    if printf '%s\n' "$host" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$|:'; then
        san_host=", IP:$host"
    else
        san_host=", DNS:$host"
    fi
    ;;
esac

crt=$outdir/safeshare.crt
key=$outdir/safeshare.key
if [ $force = 0 ]; then
    if [ -e "$crt" ] && [ -e "$key" ]; then
        echo "kept $crt and $key (--force makes new ones)"
        exit 0
    fi
    if [ -e "$crt" ] || [ -e "$key" ]; then
        echo "$0: only one of $crt and $key exists: remove it or use --force" >&2
        exit 1
    fi
fi

command -v openssl >/dev/null 2>&1 || {
    echo "$0: openssl not found" >&2
    exit 1
}
mkdir -p "$outdir"
umask 077
tmp=$(mktemp -d "$outdir/.gen-tls.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Our own configuration, not the system's: its v3_ca section would make
# this a CA certificate, which clients refuse as a server's.
cat >"$tmp/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = server
[dn]
CN = $host
O = safeshare (self-signed)
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1$san_host
EOF

openssl req -x509 -config "$tmp/openssl.cnf" -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 365 \
    -keyout "$tmp/safeshare.key" -out "$tmp/safeshare.crt" 2>"$tmp/err" || {
    cat "$tmp/err" >&2
    echo "$0: openssl req failed" >&2
    exit 1
}
chmod 0600 "$tmp/safeshare.key"
chmod 0644 "$tmp/safeshare.crt"
# The key first: a reader never finds a certificate without its key.
mv -f "$tmp/safeshare.key" "$key"
mv -f "$tmp/safeshare.crt" "$crt"
echo "wrote $crt and $key (CN=$host)"
