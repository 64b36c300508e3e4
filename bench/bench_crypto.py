#!/usr/bin/env python3
"""Crypto pool throughput: prints figures, asserts nothing.

  bench/bench_crypto.py --bin-dir build/bin [--workers 1,2,4] [--seconds 5]
                        [--window 16] [--chunk-size 1048576]

For each worker count K: starts `safeshare-crypto` (the broker) in a temp
data dir with SAFESHARE_CRYPTO_WORKERS=0 (no local thread) and a loopback
tcp worker endpoint, starts K `safeshare-crypto worker --connect ...
--threads 1` processes, and runs bench_crypto (bench/bench_crypto.c): ENCRYPT
chunk requests through the broker's front socket, a window of them in
flight, for --seconds (and, for comparison, one run of the broker with
--local-threads threads of its own and no worker process). Then prints, beside those figures, what
`openssl speed -evp aes-256-gcm` gets on this machine with 16384-byte
blocks, in one process and in one per core (-multi): the ceiling the pool
is measured against. Everything runs on this one machine, so the broker,
the client and the workers share its cores.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_pool(bin_dir, data_dir, env, workers, args, local=0):
    """One broker with `local` threads + `workers` worker processes; the
    bench_crypto result dict."""
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    env = dict(env, SAFESHARE_CRYPTO_WORKER_ENDPOINT=endpoint,
               SAFESHARE_CRYPTO_WORKERS=str(local))
    log = open(os.path.join(data_dir, "bench-%d-%d.log" % (local, workers)), "wb")
    procs = []
    try:
        broker = subprocess.Popen([os.path.join(bin_dir, "safeshare-crypto")], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        procs.append(broker)
        for _ in range(workers):
            procs.append(subprocess.Popen(
                [os.path.join(bin_dir, "safeshare-crypto"), "worker", "--connect", endpoint,
                 "--threads", "1"], env=env, stdout=log, stderr=subprocess.STDOUT))
        r = subprocess.run([os.path.join(bin_dir, "bench_crypto"),
                            "--endpoint", "ipc://%s/run/crypto.sock" % data_dir,
                            "--seconds", str(args.seconds), "--window", str(args.window),
                            "--chunk-size", str(args.chunk_size),
                            "--wait-workers", str(workers)],
                           env=env, capture_output=True, timeout=args.seconds + 120)
        line = r.stdout.decode(errors="replace").strip().splitlines()
        m = re.match(r"result (.*)", line[-1]) if line else None
        if not m:
            raise SystemExit("bench_crypto failed (%d): %s" % (r.returncode,
                                                                r.stderr.decode(errors="replace")))
        out = dict(kv.split("=", 1) for kv in m.group(1).split())
        out["rc"] = r.returncode
        out["stderr"] = r.stderr.decode(errors="replace").strip()
        return out
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()


def openssl_speed(seconds, multi=None):
    """MiB/s of `openssl speed -evp aes-256-gcm` with 16384-byte blocks."""
    argv = ["openssl", "speed", "-seconds", str(seconds)]
    if multi:
        argv += ["-multi", str(multi)]
    argv += ["-evp", "aes-256-gcm"]
    try:
        r = subprocess.run(argv, capture_output=True, timeout=seconds * 6 * 3 + 60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, repr(e)
    text = r.stdout.decode(errors="replace")
    header = next((ln for ln in text.splitlines() if ln.startswith("type")), None)
    row = next((ln for ln in text.splitlines() if ln.lower().startswith("aes-256-gcm")), None)
    if not row:
        return None, text[-500:] + r.stderr.decode(errors="replace")[-500:]
    # -multi prints no "type" header: openssl's fixed block sizes then.
    cols = re.findall(r"(\d+) bytes", header) if header else \
        ["16", "64", "256", "1024", "8192", "16384"]
    vals = re.findall(r"([\d.]+)k", row)
    if "16384" not in cols or len(vals) != len(cols):
        return None, row
    kbytes = float(vals[cols.index("16384")])   # openssl's k = 1000 bytes/s
    return kbytes * 1000 / (1 << 20), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--chunk-size", type=int, default=1048576)
    ap.add_argument("--openssl-seconds", type=int, default=3)
    ap.add_argument("--local-threads", type=int, default=2,
                    help="also one run with this many local threads and no worker "
                         "process, for comparison (0: skip)")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]

    data_dir = tempfile.mkdtemp(prefix="ssb-", dir="/tmp")  # short: ipc:// paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESHARE_")}
    env.update({"SAFESHARE_DATA_DIR": data_dir, "SAFESHARE_LOG_LEVEL": "warn"})
    try:
        r = subprocess.run([os.path.join(bin_dir, "safeshare"), "keys", "generate"], env=env,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit("safeshare keys generate failed: %s" % r.stderr.decode())
        print("crypto pool: ENCRYPT %d KiB chunks through the broker, window %d, %d s per "
              "run; broker with 0 local threads; %d CPUs" % (
                  args.chunk_size // 1024, args.window, args.seconds, os.cpu_count() or 0))
        print("%-28s %10s %8s %7s" % ("workers", "MiB/s", "chunks", "errors"))
        runs = [("%d worker process%s (tcp)" % (k, "" if k == 1 else "es"), k, 0)
                for k in counts]
        if args.local_threads > 0:
            runs.append(("%d local threads (inproc)" % args.local_threads, 0,
                         args.local_threads))
        for label, k, local in runs:
            res = run_pool(bin_dir, data_dir, env, k, args, local)
            print("%-28s %10s %8s %7s%s" % (label, res["mib_s"], res["chunks"], res["errors"],
                                            "" if res["rc"] == 0 else
                                            "   (bench_crypto: %s)" % res["stderr"][-200:]),
                  flush=True)
            time.sleep(0.5)
        one, err = openssl_speed(args.openssl_seconds)
        print("openssl speed -evp aes-256-gcm, 16384-byte blocks, 1 process: %s" % (
            "%.1f MiB/s" % one if one is not None else "n/a (%s)" % err))
        cpus = os.cpu_count() or 1
        if cpus > 1:
            many, err = openssl_speed(args.openssl_seconds, multi=cpus)
            print("openssl speed -evp aes-256-gcm, 16384-byte blocks, -multi %d: %s" % (
                cpus, "%.1f MiB/s" % many if many is not None else "n/a (%s)" % err))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
