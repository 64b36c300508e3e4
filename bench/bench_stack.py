#!/usr/bin/env python3
"""Benchmark of the real stack on loopback: prints figures, asserts nothing.

  bench/bench_stack.py --bin-dir build/bin [--size-mib 256] [--requests 500]

Starts `safeshare up` in a temp data dir, then measures:
- upload and download throughput of one large file (streamed through
  gateway -> crypto -> storage and back),
- latency percentiles of small authenticated requests (GET /api/files/{id}),
- peak resident memory (VmHWM) of every service after the run: the upload
  is streamed, so the gateway's peak should not grow with the file size.
"""
import argparse
import hashlib
import http.client
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
from stack import Stack  # noqa: E402


def stream_upload(stack, token, size):
    """Multipart upload generated on the fly (the client never holds it)."""
    boundary = "----bench" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=600)
    conn.putrequest("POST", "/api/files")
    conn.putheader("Authorization", "Bearer " + token)
    conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    t0 = time.monotonic()
    conn.send(head)
    left = size
    while left:
        piece = block[:min(left, len(block))]
        conn.send(piece)
        digest.update(piece)
        left -= len(piece)
    conn.send(tail)
    r = conn.getresponse()
    body = r.read()
    elapsed = time.monotonic() - t0
    conn.close()
    if r.status != 201:
        raise SystemExit("upload failed: %d %r" % (r.status, body[:300]))
    import json
    meta = json.loads(body)
    if meta["sha256"] != digest.hexdigest():
        raise SystemExit("upload digest mismatch")
    return meta["id"], elapsed


def stream_download(stack, token, fid, size):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=600)
    t0 = time.monotonic()
    conn.request("GET", "/api/files/%s/content" % fid,
                 headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    got = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        got += len(b)
    elapsed = time.monotonic() - t0
    conn.close()
    if r.status != 200 or got != size:
        raise SystemExit("download failed: %d, %d bytes" % (r.status, got))
    return elapsed


def percentiles(samples, ps=(50, 90, 99)):
    s = sorted(samples)
    return {p: s[min(len(s) - 1, int(len(s) * p / 100))] for p in ps}


def peak_rss(stack):
    out = {}
    for pid in stack.our_processes():
        try:
            with open("/proc/%d/status" % pid) as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open("/proc/%d/comm" % pid) as f:
                name = f.read().strip()
            out[name] = int(status["VmHWM"].split()[0]) // 1024
        except (OSError, KeyError, ValueError):
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    size = args.size_mib << 20

    stack = Stack(args.bin_dir, {"SAFESHARE_LOG_LEVEL": "warn"})
    try:
        stack.cli("keys", "generate")
        stack.cli("user", "add", "bench@example.com", "--role", "ops",
                  stdin=b"benchmark password\n")
        stack.start()
        r = stack.request("POST", "/api/auth/login",
                          {"email": "bench@example.com", "password": "benchmark password"})
        token = r.json()["access"]

        fid, up_s = stream_upload(stack, token, size)
        down_s = stream_download(stack, token, fid, size)

        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        lat = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            conn.request("GET", "/api/files/" + fid, headers={"Authorization": "Bearer " + token})
            resp = conn.getresponse()
            resp.read()
            lat.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                raise SystemExit("metadata request failed: %d" % resp.status)
        conn.close()
        rss = peak_rss(stack)
    finally:
        stack.stop()
        stack.cleanup()

    mib = size / (1 << 20)
    print("safeshare stack benchmark (loopback, one client, %d crypto workers, 1 MiB chunks)"
          % 2)
    print("upload   %6d MiB in %6.2f s = %7.1f MiB/s" % (mib, up_s, mib / up_s))
    print("download %6d MiB in %6.2f s = %7.1f MiB/s" % (mib, down_s, mib / down_s))
    p = percentiles(lat)
    print("GET /api/files/{id} x%d (keep-alive): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms"
          % (len(lat), p[50], p[90], p[99]))
    print("peak RSS (VmHWM, MiB): " + ", ".join("%s %d" % kv for kv in sorted(rss.items())))


if __name__ == "__main__":
    main()
