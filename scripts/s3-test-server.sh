#!/usr/bin/env bash
# A private, throwaway S3 API server for the tests (PLATFORM.md).
#
# Prefers moto (on the machine's python3), which checks every SigV4
# signature: it starts with INITIAL_NO_AUTH_ACTION_COUNT=3, those three
# unsigned calls make an IAM user, its access key and an allow-all
# policy, and from then on every request must be signed with that key.
# The bucket is then created with a signed request. Without moto it
# falls back to npm s3rver (files under DIR/s3rver), which does NOT
# check signatures (nor AbortMultipartUpload / ListMultipartUploads):
# it says so on stderr and with SAFESHARE_TEST_S3_SIGNED=0, and the S3
# tests then print `NOT CHECKED on s3rver: ...` for what it cannot do.
#
# SAFESHARE_TEST_S3_FORCE=s3rver uses s3rver even where moto exists
# (to run the tests as a bare Debian root would); =moto fails instead
# of falling back. Unset or empty: moto if present, else s3rver.
#
#   s3-test-server.sh start DIR PORT   prints env lines (also in DIR/env):
#       SAFESHARE_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#       SAFESHARE_TEST_S3_BUCKET=safeshare-test
#       SAFESHARE_TEST_S3_REGION=us-east-1
#       SAFESHARE_TEST_S3_ACCESS_KEY=...
#       SAFESHARE_TEST_S3_SECRET_KEY=...
#       SAFESHARE_TEST_S3_SERVER=moto|s3rver
#       SAFESHARE_TEST_S3_SIGNED=1|0
#       SAFESHARE_TEST_S3_NOLIST_ACCESS_KEY=...  a key whose policy denies
#       SAFESHARE_TEST_S3_NOLIST_SECRET_KEY=...  s3:ListBucketMultipartUploads
#           (moto; on s3rver the plain key, which cannot list them either)
#   s3-test-server.sh stop DIR         stops it (DIR is then removable)
#
# Python callers: parse the KEY=value lines of stdout or DIR/env.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
bucket=safeshare-test
region=us-east-1
# s3rver 3.7.1, pinned: the version PLATFORM.md checked.
s3rver_version=3.7.1

# Polls url until it answers or pid dies; never a fixed sleep.
wait_ready() {  # pid url what
    local pid=$1 url=$2 what=$3 i
    for i in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3-test-server: $what exited at start; its log:" >&2
            cat "$dir/log" >&2 || true
            return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    echo "s3-test-server: $what did not answer at $url within 30 s" >&2
    return 1
}

have_moto() {
    python3 -c 'import moto.server, boto3' >/dev/null 2>&1
}

start_moto() {  # port
    local port=$1
    (cd "$dir" && INITIAL_NO_AUTH_ACTION_COUNT=3 exec python3 -m moto.server \
        -H 127.0.0.1 -p "$port" >"$dir/log" 2>&1) &
    local pid=$!
    echo "$pid" >"$dir/pid"
    wait_ready "$pid" "http://127.0.0.1:$port/moto-api/" moto
    # The three unsigned calls, then a signed CreateBucket: a server that
    # took the bucket from a wrongly signed client would fail here.
    python3 - "$port" "$bucket" "$region" >"$dir/keys" <<'PY'
import json, sys
import boto3
from botocore.config import Config
port, bucket, region = sys.argv[1], sys.argv[2], sys.argv[3]
url = "http://127.0.0.1:%s" % port
iam = boto3.client("iam", endpoint_url=url, region_name=region,
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="safeshare")
key = iam.create_access_key(UserName="safeshare")["AccessKey"]
iam.put_user_policy(UserName="safeshare", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=url, region_name=region,
                  aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"],
                  config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=bucket)
# A second key whose policy denies ListMultipartUploads (AccessDenied),
# as a real bucket policy may: storage must warn and go on with it.
iam = boto3.client("iam", endpoint_url=url, region_name=region,
                   aws_access_key_id=key["AccessKeyId"],
                   aws_secret_access_key=key["SecretAccessKey"])
iam.create_user(UserName="safeshare-nolist")
nolist = iam.create_access_key(UserName="safeshare-nolist")["AccessKey"]
iam.put_user_policy(UserName="safeshare-nolist", PolicyName="nolist",
                    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "*", "Resource": "*"},
                        {"Effect": "Deny", "Action": "s3:ListBucketMultipartUploads",
                         "Resource": "*"}]}))
# Proof that signatures are checked: a wrong secret must be refused.
bad = boto3.client("s3", endpoint_url=url, region_name=region,
                   aws_access_key_id=key["AccessKeyId"],
                   aws_secret_access_key="wrong" + key["SecretAccessKey"],
                   config=Config(s3={"addressing_style": "path"}))
try:
    bad.list_objects_v2(Bucket=bucket)
    sys.exit("moto accepted a wrong signature")
except Exception as e:
    if "SignatureDoesNotMatch" not in str(e):
        sys.exit("unexpected answer to a wrong signature: %s" % e)
print(key["AccessKeyId"], key["SecretAccessKey"],
      nolist["AccessKeyId"], nolist["SecretAccessKey"])
PY
}

start_s3rver() {  # port why
    local port=$1 why=$2 bin version
    bin=$(command -v s3rver || true)
    if [ -z "$bin" ]; then
        echo "s3-test-server: $why, and s3rver is not installed;" \
             "scripts/install-deps.sh --test installs s3rver@$s3rver_version" >&2
        return 1
    fi
    # Another version may implement more or less of S3: the tests'
    # NOT CHECKED lines are right for this one only.
    version=$("$bin" --version 2>/dev/null || true)
    if [ "$version" != "$s3rver_version" ]; then
        echo "s3-test-server: $bin is s3rver ${version:-of unknown version}," \
             "need $s3rver_version (scripts/install-deps.sh --test)" >&2
        return 1
    fi
    mkdir -p "$dir/s3rver"
    # --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation
    # tokens with DES, which OpenSSL 3 only has there (without it a
    # paged listing answers 500). --service-endpoint localhost: virtual-
    # host requests to BUCKET.s3.localhost (curl resolves *.localhost).
    (cd "$dir" && NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--openssl-legacy-provider" \
        exec "$bin" -d "$dir/s3rver" -a 127.0.0.1 -p "$port" \
        --service-endpoint localhost --configure-bucket "$bucket" >"$dir/log" 2>&1) &
    local pid=$!
    echo "$pid" >"$dir/pid"
    wait_ready "$pid" "http://127.0.0.1:$port/" s3rver
    echo "S3RVER S3RVER S3RVER S3RVER" >"$dir/keys"
    echo "s3-test-server: $why, using s3rver $s3rver_version: SigV4 signatures" \
         "are NOT checked by this server" >&2
}

case "$cmd" in
start)
    [ $# -eq 3 ] || usage
    port=$3
    mkdir -p "$dir"
    force=${SAFESHARE_TEST_S3_FORCE:-}
    case "$force" in
    "" | moto | s3rver) ;;
    *)
        echo "s3-test-server: SAFESHARE_TEST_S3_FORCE must be moto, s3rver or" \
             "empty, not '$force'" >&2
        exit 2
        ;;
    esac
    if [ "$force" != s3rver ] && have_moto; then
        server=moto signed=1
        start_moto "$port" || { "$0" stop "$dir"; exit 1; }
    elif [ "$force" = moto ]; then
        echo "s3-test-server: SAFESHARE_TEST_S3_FORCE=moto, but python3 has no" \
             "moto (and boto3)" >&2
        exit 1
    else
        server=s3rver signed=0
        why="moto is missing"
        [ "$force" = s3rver ] && why="SAFESHARE_TEST_S3_FORCE=s3rver"
        start_s3rver "$port" "$why" || { "$0" stop "$dir"; exit 1; }
    fi
    read -r access secret nolist_access nolist_secret <"$dir/keys"
    cat >"$dir/env" <<EOF
SAFESHARE_TEST_S3_ENDPOINT=http://127.0.0.1:$port
SAFESHARE_TEST_S3_BUCKET=$bucket
SAFESHARE_TEST_S3_REGION=$region
SAFESHARE_TEST_S3_ACCESS_KEY=$access
SAFESHARE_TEST_S3_SECRET_KEY=$secret
SAFESHARE_TEST_S3_SERVER=$server
SAFESHARE_TEST_S3_SIGNED=$signed
SAFESHARE_TEST_S3_NOLIST_ACCESS_KEY=$nolist_access
SAFESHARE_TEST_S3_NOLIST_SECRET_KEY=$nolist_secret
EOF
    chmod 600 "$dir/env" "$dir/keys"
    cat "$dir/env"
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/pid"
    fi
    ;;
*)
    usage
    ;;
esac
