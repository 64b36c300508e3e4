#!/usr/bin/env python3
"""Issue 8: crypto workers on other hosts, with CURVE, in network namespaces.

Topology (unique names per run, all torn down in `finally`):

    root ns (this test) --veth-- ns A: crypto broker (no local worker,
                                 worker endpoint tcp://0.0.0.0:5570),
                                 auth, storage, mailer on loopback tcp,
                                 the gateway on A's address of this link
    ns A --veth-- ns W1: one `safeshare-crypto worker` (own UTS host name)
    ns A --veth-- ns W2: one worker (own UTS host name)
    ns A --veth-- ns W3: the workers that must be refused

Every service is its own process with its own environment, in the shape of
compose/docker-compose.yml: its own CURVE secret, the public keys of what
it calls, the allow dir of who calls it, from the key layout that
compose/curve-keys.sh makes. The broker logs at debug level: its
"chunk N sent to crypto worker HOST:PID:THREAD" lines, tagged with the
request id the gateway answered, tell which worker did which chunk.

0. Every service's compose healthcheck (`safeshare health SERVICE`, its
   own env) passes in A; `safeshare health crypto-worker` passes on each
   worker host (the broker's front is on A's addresses, as in compose).
1. A multi-MiB upload and its download, byte-exact, chunks done by both
   remote workers (per-worker counts from the broker's log > 0), the pool
   seen through the gateway's /metrics from the test's address. Then an
   upload with W2's link and the test's link captured (AF_PACKET): no
   sample of the plaintext chunks W2 sealed is on W2's link, all are on
   the test's plain-HTTP link (the control).
2. A throttled upload, then a throttled download: W1's link is cut (veth
   down) mid-transfer; the transfer completes byte-exact; the broker
   declares W1 dead within the heartbeat bound and requeues its chunk;
   every chunk after that went to W2; W1's healthcheck fails. Link up:
   W1 rejoins and stays, its healthcheck passes.
3. A worker whose key (`safeshare keys service-gen`) is not in the broker's
   allow dir never joins and logs that the broker refused its CURVE key;
   its healthcheck fails; uploads still work.
4. A plain worker (no CURVE) never joins either: CURVE is in effect (with
   --no-curve, a debugging switch, 3, 4 and the capture check fail).

Without namespaces (not root, no CAP_NET_ADMIN, no `ip`): prints
`SKIP: cannot create network namespaces: <error>` and exits 77.
NETNS_KEEP=1 in the environment keeps the data dir (logs, keys, captures).
"""
import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import FAILURES, PASSED, check  # noqa: E402
from stack import Download, Stack, Upload  # noqa: E402
from test_crypto_pool import as_json, wait_for  # noqa: E402

SKIP_RC = 77
CHUNK = 64 * 1024
SIZE = 8 * 1024 * 1024 + 4321         # 129 chunks, the last one short
THROTTLED = 16 * 1024 * 1024 + 777    # 257 chunks
RATE = 4 * 1024 * 1024                # bytes/s of the throttled transfers (about 4 s)
CUT_AT = 0.25                         # share of the transfer done when W1's link goes down
LIVENESS_S = 3                        # CRYPTOD_HEARTBEAT_LIVENESS x 1 s heartbeats
WINDOW = 4                            # SAFESHARE_CRYPTO_WINDOW (the default, said explicitly)
RPC_TIMEOUT_MS = 5000                 # the default SAFESHARE_RPC_TIMEOUT_MS
PORTS = {"auth": 5551, "crypto": 5552, "storage": 5553, "mailer": 5554}
WORKER_PORT = 5570
HTTP_PORT = 8000
REFUSED_LINE = "refused our CURVE key"  # the worker's log line (H1, cryptod_worker.c)

SENT_RE = re.compile(r' req="([^"]*)" msg="chunk (\d+) sent to crypto worker (\S+) '
                     r'\(attempt (\d+)\)"')
DROP_RE = re.compile(r' msg="crypto worker (\S+) dropped: ([^"]*)"')
JOIN_RE = re.compile(r' msg="crypto worker (\S+) joined')
REQUEUE_RE = re.compile(r' req="([^"]*)" msg="chunk job requeued after losing its worker')
RECONNECT_RE = re.compile(r'reconnecting to \S+ \(([^;)]*)')
TS_RE = re.compile(r'^ts=(\S+)Z ')


class SkipTest(Exception):
    pass


def run(*argv, check_rc=True, timeout=30):
    """Runs a setup command; raises with its stderr when it fails."""
    r = subprocess.run(list(argv), capture_output=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (
            " ".join(argv), r.returncode, r.stderr.decode(errors="replace").strip()))
    return r


def log_ts(line):
    """The wall-clock time (epoch s) of a cm_log line, or None."""
    m = TS_RE.match(line)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=timezone.utc).timestamp()


class Net:
    """The namespaces and links of one run; `down()` removes all of it."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.ns = {k: "ss%s-%s" % (k, self.tag) for k in ("A", "W1", "W2", "W3")}
        self.created = []
        self.root_if = "ssr" + self.tag
        # root <-> A: a random /30 in 10.200-249.x, not one the root ns uses.
        used = run("ip", "-4", "-o", "addr", "show").stdout.decode()
        while True:
            net = "10.%d.%d." % (random.randint(200, 249), random.randint(0, 255))
            if net not in used:
                break
        self.root_ip, self.a_ip = net + "1", net + "2"
        # A <-> Wn: their own /30 each, private to those two namespaces.
        self.w_ip = {w: ("10.0.%d.1" % i, "10.0.%d.2" % i)
                     for i, w in enumerate(("W1", "W2", "W3"), 1)}
        self.w_if = {w: ("ssa%s%s" % (w[1], self.tag), "ssw%s%s" % (w[1], self.tag))
                     for w in ("W1", "W2", "W3")}

    def probe(self):
        """What must work here: a namespace, a process in it with its own
        UTS name, a veth pair. Any failure is a SkipTest with the error."""
        try:
            r = run("ip", "netns", "add", self.ns["A"], check_rc=False)
            if r.returncode == 0:
                self.created.append(self.ns["A"])
                r = run("ip", "netns", "exec", self.ns["A"], "unshare", "--uts", "--",
                        "hostname", "probe-" + self.tag, check_rc=False)
            if r.returncode == 0:
                r = run("ip", "link", "add", self.root_if, "type", "veth", "peer", "name",
                        "ssa" + self.tag, check_rc=False)
        except OSError as e:
            raise SkipTest(str(e))
        if r.returncode != 0:
            raise SkipTest("%s: %s" % (" ".join(r.args),
                                       r.stderr.decode(errors="replace").strip()))

    def up(self):
        A = self.ns["A"]
        for k in ("W1", "W2", "W3"):
            run("ip", "netns", "add", self.ns[k])
            self.created.append(self.ns[k])
        for k in self.ns:
            run("ip", "-n", self.ns[k], "link", "set", "lo", "up")
        run("ip", "link", "set", "ssa" + self.tag, "netns", A)
        run("ip", "addr", "add", self.root_ip + "/30", "dev", self.root_if)
        run("ip", "link", "set", self.root_if, "up")
        run("ip", "-n", A, "addr", "add", self.a_ip + "/30", "dev", "ssa" + self.tag)
        run("ip", "-n", A, "link", "set", "ssa" + self.tag, "up")
        for w in ("W1", "W2", "W3"):
            a_if, w_if = self.w_if[w]
            a_ip, w_ip = self.w_ip[w]
            run("ip", "link", "add", a_if, "type", "veth", "peer", "name", w_if)
            run("ip", "link", "set", a_if, "netns", A)
            run("ip", "link", "set", w_if, "netns", self.ns[w])
            run("ip", "-n", A, "addr", "add", a_ip + "/30", "dev", a_if)
            run("ip", "-n", self.ns[w], "addr", "add", w_ip + "/30", "dev", w_if)
            run("ip", "-n", A, "link", "set", a_if, "up")
            run("ip", "-n", self.ns[w], "link", "set", w_if, "up")

    def link(self, w, state):
        """W's end of its link to A, up or down (the cable pulled)."""
        run("ip", "-n", self.ns[w], "link", "set", self.w_if[w][1], state)

    def pids(self):
        out = []
        for ns in self.created:
            r = run("ip", "netns", "pids", ns, check_rc=False)
            out += [int(p) for p in r.stdout.split()]
        return out

    def down(self):
        for ns in reversed(self.created):
            run("ip", "netns", "del", ns, check_rc=False)
        # Gone with its peer's namespace; this only covers a half-made run.
        run("ip", "link", "del", self.root_if, check_rc=False)
        self.created = []


class Proc:
    """One process started in a namespace (`ip netns exec` execs, so the
    Popen pid is the service's), its own log file."""

    def __init__(self, label, ns, argv, env, log_dir):
        self.label = label
        self.log_path = os.path.join(log_dir, "%s.log" % label)
        with open(self.log_path, "wb") as log:
            self.p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        self.rc = None

    def log(self, offset=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def stop(self, timeout=20):
        """SIGTERM, SIGKILL after timeout; the exit code (None if killed)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                self.rc = None
                return None
        self.rc = self.p.returncode
        return self.rc


class NetStack(Stack):
    """Stack's data dir, environment, CLI, users and requests; its
    services started here one by one, the gateway reached at host:port."""

    def __init__(self, bin_dir, host, port):
        super().__init__(bin_dir)
        self.host, self.port = host, port
        self.base = "http://%s:%d" % (host, port)

    def metrics(self):
        """GET /metrics as {series: value} (plain `name value` lines)."""
        r = self.request("GET", "/metrics", timeout=10)
        out = {}
        if r.status != 200:
            return None
        for line in r.body.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        return out


def of_request(logged, rid):
    """A service logs the gateway's request id with ".N", its call number."""
    return logged == rid or logged.startswith(rid + ".")


class Broker:
    """What the broker's debug log says (read from an offset)."""

    def __init__(self, proc):
        self.proc = proc

    def lines(self, offset=0):
        return self.proc.log(offset).splitlines()

    def sends(self, req_id, offset=0):
        """[(worker name, chunk index, attempt, line no, the call's request
        id as logged)] for a request id."""
        out = []
        for i, line in enumerate(self.lines(offset)):
            m = SENT_RE.search(line)
            if m and of_request(m.group(1), req_id):
                out.append((m.group(3), int(m.group(2)), int(m.group(4)), i, m.group(1)))
        return out

    def find(self, regex, offset=0, group1=None):
        """[(line no, line)] matching regex; with group1, only those whose
        group 1 is that worker name or (with a ".N") that request id."""
        out = []
        for i, line in enumerate(self.lines(offset)):
            m = regex.search(line)
            if m and (group1 is None or of_request(m.group(1), group1)):
                out.append((i, line))
        return out

    def joined(self, prefix, offset=0):
        return [ln for _, ln in self.find(JOIN_RE, offset)
                if JOIN_RE.search(ln).group(1).startswith(prefix)]


def per_host(sends):
    counts = {}
    for name, *_ in sends:
        host = name.split(":")[0]
        counts[host] = counts.get(host, 0) + 1
    return counts


# Raw frames of one interface into a file until a stop file appears (run
# with `ip netns exec` for an interface of another namespace).
CAPTURE = r"""
import os, socket, sys
ifname, out, stop = sys.argv[1:4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: no drops
s.bind((ifname, 0))
s.settimeout(0.1)
with open(out, "wb") as f:
    print("ready", flush=True)
    while not os.path.exists(stop):
        try:
            f.write(s.recv(1 << 18))
        except socket.timeout:
            pass
"""


class Capture:
    """What crosses an interface, while it runs."""

    def __init__(self, ns, ifname, path):
        self.path, self.stop_path = path, path + ".stop"
        argv = [sys.executable, "-c", CAPTURE, ifname, path, self.stop_path]
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if self.p.stdout.readline().strip() != b"ready":
            self.p.kill()
            raise AssertionError("capture on %s did not start: %s" % (
                ifname, self.p.communicate()[1].decode(errors="replace")))

    def stop(self):
        """The bytes captured."""
        open(self.stop_path, "w").close()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        with open(self.path, "rb") as f:
            return f.read()


def on_host(host, *argv):
    """argv run in a new UTS namespace named `host` (a host of its own)."""
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$1" && shift && exec "$@"',
            "sh", host] + list(argv)


def curve_layout(bin_dir, key_dir, src_dir):
    """compose/curve-keys.sh KEY_DIR with our safeshare first on PATH."""
    script = os.path.join(src_dir, "compose", "curve-keys.sh")
    env = dict(os.environ)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    for k in list(env):
        if k.startswith("SAFESHARE_"):
            del env[k]
    r = subprocess.run([script, key_dir], env=env, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("compose/curve-keys.sh %s failed (%d): %s" % (
            key_dir, r.returncode, r.stderr.decode(errors="replace")))


def curve_env(keys, name, serves):
    """A process's CURVE settings from the curve-keys.sh layout."""
    env = {
        "SAFESHARE_CURVE_SECRET_KEY": os.path.join(keys, name, name + ".key_secret"),
        "SAFESHARE_CURVE_PUBLIC_DIR": os.path.join(keys, "public"),
    }
    if serves:
        env["SAFESHARE_CURVE_ALLOW_DIR"] = os.path.join(keys, "allow", name)
    return env


class Run:
    def __init__(self, bin_dir, src_dir, net, curve):
        self.bin_dir, self.src_dir, self.net, self.curve = bin_dir, src_dir, net, curve
        self.stack = NetStack(bin_dir, net.a_ip, HTTP_PORT)
        self.log_dir = os.path.join(self.stack.data_dir, "logs")
        os.makedirs(self.log_dir)
        self.key_dir = os.path.join(self.stack.data_dir, "curve")
        self.services = []   # in start order
        self.workers = {}    # label -> (Proc, host name)
        self.broker = None
        self.token = None
        self.svc_env = {}    # service -> its environment

    def env(self, extra):
        e = dict(self.stack.env)
        e.update(extra)
        return e

    def start_services(self):
        # What `safeshare up` lays out before it starts them.
        for d in ("blobs", "mail"):
            os.makedirs(os.path.join(self.stack.data_dir, d), mode=0o700, exist_ok=True)
        ep = {s: "tcp://127.0.0.1:%d" % p for s, p in PORTS.items()}
        # As in compose: the broker's front is on every address of host A,
        # so `safeshare health crypto-worker` on a worker host can ask it.
        front = "tcp://0.0.0.0:%d" % PORTS["crypto"]
        common = {
            "SAFESHARE_LOG_LEVEL": "info",
            "SAFESHARE_CHUNK_SIZE": str(CHUNK),
            "SAFESHARE_HTTP_ADDR": "%s:%d" % (self.net.a_ip, HTTP_PORT),
            "SAFESHARE_PUBLIC_URL": self.stack.base,
        }
        specs = [
            ("crypto", "safeshare-crypto", True, {
                "SAFESHARE_CRYPTO_ENDPOINT": front,
                "SAFESHARE_CRYPTO_WORKERS": "0",
                "SAFESHARE_CRYPTO_WORKER_ENDPOINT": "tcp://0.0.0.0:%d" % WORKER_PORT,
                # Its "chunk N sent to crypto worker X" lines say who did what.
                "SAFESHARE_LOG_LEVEL": "debug",
            }),
            ("storage", "safeshare-storage", True, {
                "SAFESHARE_STORAGE_ENDPOINT": ep["storage"]}),
            ("mailer", "safeshare-mailer", True, {
                "SAFESHARE_MAILER_ENDPOINT": ep["mailer"]}),
            ("auth", "safeshare-auth", True, {
                "SAFESHARE_AUTH_ENDPOINT": ep["auth"],
                "SAFESHARE_MAILER_ENDPOINT": ep["mailer"]}),
            ("gateway", "safeshare-gateway", False, {
                "SAFESHARE_AUTH_ENDPOINT": ep["auth"],
                "SAFESHARE_CRYPTO_ENDPOINT": ep["crypto"],
                "SAFESHARE_STORAGE_ENDPOINT": ep["storage"],
                "SAFESHARE_MAILER_ENDPOINT": ep["mailer"],
                "SAFESHARE_CRYPTO_WINDOW": str(WINDOW),
                "SAFESHARE_RPC_TIMEOUT_MS": str(RPC_TIMEOUT_MS),
                "SAFESHARE_METRICS_ALLOW": self.net.root_ip + "/32",
            }),
        ]
        for name, binary, serves, extra in specs:
            e = dict(common)
            e.update(extra)
            if self.curve:
                e.update(curve_env(self.key_dir, name, serves))
            self.svc_env[name] = self.env(e)
            p = Proc(name, self.net.ns["A"], [os.path.join(self.bin_dir, binary)],
                     self.svc_env[name], self.log_dir)
            self.services.append(p)
            if name == "crypto":
                self.broker = Broker(p)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for p in self.services:
                if p.p.poll() is not None:
                    raise AssertionError("%s exited with %d at start:\n%s" % (
                        p.label, p.p.returncode, p.log()[-4000:]))
            try:
                if self.stack.request("GET", "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the stack in ns A is not ready within 60 s")

    def start_worker(self, label, w_ns, host, curve_secret):
        """`safeshare-crypto worker` in ns w_ns under UTS host name `host`;
        curve_secret: its secret cert, or None for a plain worker."""
        a_ip = self.net.w_ip[w_ns][0]
        e = {"SAFESHARE_LOG_LEVEL": "info",
             # for its healthcheck (compose: tcp://crypto:5552)
             "SAFESHARE_CRYPTO_ENDPOINT": "tcp://%s:%d" % (a_ip, PORTS["crypto"])}
        if curve_secret:
            e["SAFESHARE_CURVE_SECRET_KEY"] = curve_secret
            e["SAFESHARE_CURVE_PUBLIC_DIR"] = os.path.join(self.key_dir, "public")
        argv = on_host(host, os.path.join(self.bin_dir, "safeshare-crypto"), "worker",
                       "--connect", "tcp://%s:%d" % (a_ip, WORKER_PORT), "--threads", "1")
        p = Proc(label, self.net.ns[w_ns], argv, self.env(e), self.log_dir)
        self.workers[label] = (p, host, w_ns, self.env(e))
        return p

    def health(self, service, label=None, timeout_ms=2000):
        """`safeshare health SERVICE` where that process runs, with its
        environment (the compose healthcheck): a service of ns A, or the
        worker `label` on its host. (exit code, stderr)."""
        argv = [os.path.join(self.bin_dir, "safeshare"), "health", service,
                "--timeout-ms", str(timeout_ms)]
        if label:
            _, host, w_ns, env = self.workers[label]
            argv = ["ip", "netns", "exec", self.net.ns[w_ns]] + on_host(host, *argv)
        else:
            env = self.svc_env[service]
            argv = ["ip", "netns", "exec", self.net.ns["A"]] + argv
        r = subprocess.run(argv, env=env, capture_output=True, timeout=30)
        return r.returncode, r.stderr.decode(errors="replace").strip()

    def worker_name(self, label):
        p, host = self.workers[label][:2]
        return "%s:%d:0" % (host, p.pid)

    def stop_all(self):
        """Workers, then services in reverse start order; exit codes."""
        rcs = {}
        for label, w in self.workers.items():
            rcs[label] = w[0].stop(timeout=15)
        for p in reversed(self.services):
            rcs[p.label] = p.stop(timeout=25)
        return rcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--no-curve", action="store_true",
                    help="debugging only: CURVE off (the test then fails by design)")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    # SIGTERM (e.g. a harness timeout) unwinds through the `finally` that
    # stops the processes and deletes the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    src_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        net = Net()
        net.probe()
    except (OSError, AssertionError, SkipTest) as e:
        # Said plainly, and exit 77: ctest shows "Skipped", never "Passed".
        print("SKIP: cannot create network namespaces: %s" % e)
        if "net" in locals():
            net.down()
        return SKIP_RC
    run_ = None
    try:
        net.up()
        print("namespaces %s; gateway at %s:%d, test at %s; workers connect to "
              "%s / %s:%d" % (", ".join(net.ns.values()), net.a_ip, HTTP_PORT, net.root_ip,
                              net.w_ip["W1"][0], net.w_ip["W2"][0], WORKER_PORT), flush=True)
        run_ = Run(bin_dir, src_dir, net, not args.no_curve)
        scenario(run_)
    except Exception:  # a crash is a failure with its traceback, never a pass
        import traceback
        traceback.print_exc()
        check(False, "test ran to the end")
    finally:
        if run_:
            rcs = run_.stop_all()
            bad = {k: v for k, v in rcs.items() if v != 0}
            check(not bad, "every service and worker exits 0 on SIGTERM", repr(bad))
        left = net.pids()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        check(not left, "no process left in the test's namespaces", repr(left))
        net.down()
        r = run("ip", "netns", "list", check_rc=False)
        check(net.tag not in r.stdout.decode(), "the test's namespaces are deleted")
        if run_:
            if FAILURES:
                for p in run_.services + [w[0] for w in run_.workers.values()]:
                    print("---- %s log (tail) ----\n%s" % (p.label, p.log()[-3000:]))
            if not os.environ.get("NETNS_KEEP"):
                run_.stack.cleanup()
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 1 if FAILURES else 0


def scenario(r):
    stack, net = r.stack, r.net
    if r.curve:
        curve_layout(r.bin_dir, r.key_dir, r.src_dir)
        print("CURVE on: keys laid out by compose/curve-keys.sh in %s" % r.key_dir)
    else:
        print("CURVE OFF (--no-curve): debugging run, the CURVE checks must fail")
    ops_email, ops_pw = "ops@example.com", "correct horse battery"
    stack.cli("keys", "generate")
    stack.add_user(ops_email, ops_pw, "ops")
    t0 = time.monotonic()
    r.start_services()
    print("auth, storage, mailer, crypto broker, gateway ready in ns A (%.1f s)"
          % (time.monotonic() - t0), flush=True)
    resp = stack.login(ops_email, ops_pw)
    if not check(resp.status == 200, "ops logs in through the gateway at %s" % stack.base,
                 repr(resp)):
        return
    ops = resp.json()["access"]
    r.token = ops
    res = {svc: r.health(svc) for svc in ("gateway", "auth", "crypto", "storage", "mailer")}
    check(all(rc == 0 for rc, _ in res.values()),
          "each service's healthcheck (safeshare health SERVICE, its own env and key) "
          "exits 0 in ns A", repr({k: v for k, v in res.items() if v[0] != 0}))
    broker = r.broker

    # ---- 0. two remote workers, each on its own host ------------------
    secret = os.path.join(r.key_dir, "crypto-worker", "crypto-worker.key_secret") \
        if r.curve else None
    hosts = {"w1": "w1-" + net.tag, "w2": "w2-" + net.tag}
    r.start_worker("w1", "W1", hosts["w1"], secret)
    r.start_worker("w2", "W2", hosts["w2"], secret)
    names = {lb: r.worker_name(lb) for lb in ("w1", "w2")}
    ok = wait_for(lambda: all(broker.joined(names[lb]) for lb in ("w1", "w2")), 15)
    check(ok, "the broker logs both remote workers joined: %s, %s"
          % (names["w1"], names["w2"]))
    m = stack.metrics()
    check(m is not None and m.get("safeshare_crypto_workers_alive") == 2,
          "GET /metrics from %s: safeshare_crypto_workers_alive 2 (no local worker)"
          % net.root_ip, repr(m and m.get("safeshare_crypto_workers_alive")))
    res = {lb: r.health("crypto-worker", lb) for lb in ("w1", "w2")}
    check(all(rc == 0 for rc, _ in res.values()),
          "safeshare health crypto-worker on hosts %s and %s (the broker's pool, asked "
          "from there): 0" % (hosts["w1"], hosts["w2"]), repr(res))

    # ---- 1. upload and download spread over both workers ---------------
    data = os.urandom(SIZE)
    sha = hashlib.sha256(data).hexdigest()
    t0 = time.monotonic()
    resp = stack.upload(ops, "spread.bin", data)
    took = time.monotonic() - t0
    meta = as_json(resp)
    fid = meta.get("id")
    check(resp.status == 201 and meta.get("size") == SIZE and meta.get("sha256") == sha,
          "%.1f MiB upload (%d chunks of %d KiB): 201, size and SHA-256 exact (%.1f s)"
          % (SIZE / 2**20, -(-SIZE // CHUNK), CHUNK // 1024, took), repr(resp))
    counts = per_host(broker.sends(resp.header("X-Request-Id") or "-"))
    check(counts.get(hosts["w1"], 0) > 0 and counts.get(hosts["w2"], 0) > 0 and
          sum(counts.values()) >= -(-SIZE // CHUNK),
          "... its chunks done by both remote workers: %r" % counts)
    if not fid:
        return
    t0 = time.monotonic()
    resp = stack.request("GET", "/api/files/%s/content" % fid, token=ops, timeout=60)
    took = time.monotonic() - t0
    check(resp.status == 200 and hashlib.sha256(resp.body).hexdigest() == sha,
          "its download: 200, bytes exact (%.1f s)" % took,
          "status=%d len=%d" % (resp.status, len(resp.body)))
    counts = per_host(broker.sends(resp.header("X-Request-Id") or "-"))
    check(counts.get(hosts["w1"], 0) > 0 and counts.get(hosts["w2"], 0) > 0 and
          sum(counts.values()) >= -(-SIZE // CHUNK),
          "... its chunks done by both remote workers: %r" % counts)

    # ---- 1b. on the wire ------------------------------------------------
    on_the_wire(r, ops, hosts)

    # ---- 2. W1's link cut mid-transfer (upload, then download) ---------
    big = os.urandom(THROTTLED)
    big_sha = hashlib.sha256(big).hexdigest()
    up = Upload(stack, ops, "cut.bin", big, RATE, CHUNK // 2)
    got = cut_mid_transfer(r, up, "upload", names, hosts)
    meta = {}
    try:
        meta = json.loads(up.body) if up.body else {}
    except ValueError:
        pass
    check(got and up.status == 201 and meta.get("size") == THROTTLED and
          meta.get("sha256") == big_sha,
          "%.1f MiB upload at %d MiB/s with W1's link cut: 201, size and SHA-256 exact "
          "(%.1f s)" % (THROTTLED / 2**20, RATE // 2**20, up.elapsed or 0),
          "status=%r error=%r body=%r" % (up.status, up.error, up.body[:300]))
    big_id = meta.get("id")
    if not big_id:
        return
    down = Download(stack, ops, big_id, RATE, CHUNK // 2)
    got = cut_mid_transfer(r, down, "download", names, hosts)
    check(got and down.status == 200 and down.done == THROTTLED and
          down.digest.hexdigest() == big_sha,
          "%.1f MiB download at %d MiB/s with W1's link cut: 200, bytes exact (%.1f s)"
          % (THROTTLED / 2**20, RATE // 2**20, down.elapsed or 0),
          "status=%r got=%d error=%r" % (down.status, down.done, down.error))

    # ---- 3. a worker with a key the broker does not know ----------------
    refused_worker(r, "rogue", "rogue-" + net.tag, curve=True)
    # ---- 4. a plain worker: CURVE is in effect ---------------------------
    refused_worker(r, "plain", "plain-" + net.tag, curve=False)


def on_the_wire(r, token, hosts):
    """An upload while A<->W2 and root<->A are captured: pieces of the
    plaintext chunks W2 sealed must not be on its link (CURVE), and are
    on the test's plain-HTTP link (the control: the capture sees clear
    bytes where there are some)."""
    stack, net, broker = r.stack, r.net, r.broker
    data = os.urandom(2 * 1024 * 1024 + 99)
    w2 = Capture(net.ns["W2"], net.w_if["W2"][1], os.path.join(r.log_dir, "w2.pcap"))
    try:
        root = Capture(None, net.root_if, os.path.join(r.log_dir, "root.pcap"))
    except AssertionError:
        w2.stop()
        raise
    try:
        resp = stack.upload(token, "wire.bin", data)
    finally:
        on_w2, on_root = w2.stop(), root.stop()
    sends = broker.sends(resp.header("X-Request-Id") or "-")
    w2_chunks = sorted({i for name, i, *_ in sends if name.startswith(hosts["w2"] + ":")})
    # 48 bytes from inside each chunk W2 sealed (a chunk is CHUNK bytes of
    # plaintext going out, CHUNK + 16 of ciphertext coming back).
    w2_chunks = [i for i in w2_chunks if (i + 1) * CHUNK <= len(data)]  # not the short last
    needles = [data[i * CHUNK + 1000:i * CHUNK + 1048] for i in w2_chunks]
    in_clear = sum(1 for n in needles if n in on_w2)
    control = sum(1 for n in needles if n in on_root)
    check(resp.status == 201 and w2_chunks and len(on_w2) >= len(w2_chunks) * CHUNK * 3 // 2,
          "an upload with the links captured: W2 sealed %d chunks, %.1f MiB crossed its link"
          % (len(w2_chunks), len(on_w2) / 2**20), repr(resp))
    check(needles and control >= len(needles) // 2,
          "control: %d of %d plaintext samples of those chunks seen on the test's plain "
          "HTTP link" % (control, len(needles)))
    check(needles and in_clear == 0,
          "CURVE on the wire: %d of %d plaintext samples seen on W2's link" % (
              in_clear, len(needles)))


def cut_mid_transfer(r, t, what, names, hosts):
    """Runs transfer t; at CUT_AT of it, W1's link goes down. Checks the
    broker drops W1 and requeues, W2 does the rest; link up, W1 rejoins.
    Returns whether the transfer finished."""
    stack, net, broker = r.stack, r.net, r.broker
    size = THROTTLED
    req0 = (stack.metrics() or {}).get("safeshare_crypto_requeued_total")
    t.start()
    while t.is_alive() and t.done < size * CUT_AT:
        time.sleep(0.01)
    check(t.is_alive() and t.done < size, "%s under way when W1's link is cut (%d%%)"
          % (what, 100 * t.done // size))
    at = broker.proc.size()
    net.link("W1", "down")
    t_cut = time.time()
    print("  W1's link down at %.1f MiB of %s" % (t.done / 2**20, what), flush=True)
    ok = wait_for(lambda: broker.find(DROP_RE, at, names["w1"]), LIVENESS_S + 5)
    drops = broker.find(DROP_RE, at, names["w1"])
    t_drop = log_ts(drops[0][1]) if drops else None
    after = (t_drop - t_cut) if t_drop else None
    check(ok and after is not None and after <= LIVENESS_S + 2 and
          "silent for" in drops[0][1],
          "the broker declared W1 dead %s after the cut (bound: heartbeat liveness %d s)"
          % ("%.1f s" % after if after is not None else "never", LIVENESS_S),
          repr(drops[:1]))
    t.join(timeout=120)
    finished = not t.is_alive() and t.error is None
    check(finished, "%s finished" % what, "error=%r done=%d" % (t.error, t.done))
    # What the broker did with this transfer's chunks, in its log's order.
    sends = broker.sends(t.req_id or "-", at)
    requeued = broker.find(REQUEUE_RE, at, t.req_id or "-")
    drop_line = drops[0][0] if drops else 10 ** 9
    after_drop = [s for s in sends if s[3] > drop_line]
    # The requeued line names the call of the chunk it puts back: those
    # W1 held when its link went down (one it answered before is not
    # lost; one handed to it just before `at` is).
    requeued_calls = {REQUEUE_RE.search(ln).group(1) for _, ln in requeued}
    lost = {s[1] for s in broker.sends(t.req_id or "-")
            if s[0] == names["w1"] and s[4] in requeued_calls}
    check(requeued and requeued[0][0] > drop_line,
          "... W1 held chunk(s) %r when its link went down; %d requeued when it was "
          "dropped" % (sorted(lost), len(requeued)))
    resent = {s[1] for s in after_drop if s[2] > 1}
    check(lost and len(lost) == len(requeued) and lost <= resent and
          all(s[0] == names["w2"] for s in after_drop if s[2] > 1),
          "... W2 did W1's lost chunk(s) %r again (attempt 2): %r"
          % (sorted(lost), sorted(resent)))
    counts = per_host(after_drop)
    check(after_drop and set(counts) == {hosts["w2"]},
          "... every chunk after W1 was dropped went to W2: %r" % counts)
    m = stack.metrics() or {}
    req1 = m.get("safeshare_crypto_requeued_total")
    check(req0 is not None and req1 is not None and req1 > req0 and
          m.get("safeshare_crypto_workers_alive") == 1,
          "/metrics: requeued_total %r -> %r, workers_alive %r" % (
              req0, req1, m.get("safeshare_crypto_workers_alive")))
    rc, err = r.health("crypto-worker", "w1")
    check(rc == 1, "safeshare health crypto-worker on W1, link down: 1 (%s)" % err)
    at = broker.proc.size()
    net.link("W1", "up")
    t_up = time.monotonic()
    ok = wait_for(lambda: broker.joined(names["w1"], at), 25)
    check(ok, "W1's link up again: W1 rejoins the pool (%.1f s)" % (time.monotonic() - t_up))
    # Joined is not enough: it must stay. The worker counts the broker's
    # silence from the new connection, not from its socket's creation,
    # or a link back late in that count makes it give up right after
    # joining (and the broker drops it again).
    time.sleep(LIVENESS_S + 1.5)
    flaps = broker.find(DROP_RE, at, names["w1"])
    check(ok and not flaps, "... and stays in it %.1f s later (no drop)" % (LIVENESS_S + 1.5),
          repr(flaps[:1]))
    rc, err = r.health("crypto-worker", "w1")
    check(rc == 0, "... and its healthcheck says 0 again", err)
    return finished


def refused_worker(r, label, host, curve):
    """A worker that must never join: a CURVE key that is not in the
    broker's allow dir, or no CURVE at all."""
    stack, broker = r.stack, r.broker
    secret = None
    if curve:
        kdir = os.path.join(r.stack.data_dir, "rogue-key")
        out = stack.cli("keys", "service-gen", "crypto-worker", "--dir", kdir)
        secret = os.path.join(kdir, "crypto-worker.key_secret")
        check(len(out.stdout.decode().strip()) == 40,
              "safeshare keys service-gen crypto-worker --dir %s: a fresh key, not in the "
              "broker's allow dir" % kdir)
    at = broker.proc.size()
    p = r.start_worker(label, "W3", host, secret)
    name = r.worker_name(label)
    if curve:
        ok = wait_for(lambda: REFUSED_LINE in p.log(), 10)
        check(ok, "the %s worker logs that the broker refused its CURVE key" % label,
              repr(p.log()[-600:]))
    # Its next connect (after the refusal, or after a whole heartbeat
    # liveness without a word from the broker): it was not let in.
    ok = wait_for(lambda: RECONNECT_RE.search(p.log()), LIVENESS_S + 7)
    m = RECONNECT_RE.search(p.log())
    check(ok and p.p.poll() is None,
          "the %s worker is not let in and keeps retrying (%s)"
          % (label, m.group(1) if m else "no reconnect"), repr(p.log()[-600:]))
    resp = stack.upload(r.token, "%s.bin" % label, os.urandom(CHUNK * 5 + 17))
    counts = per_host(broker.sends(resp.header("X-Request-Id") or "-", at))
    check(resp.status == 201 and host not in counts and sum(counts.values()) >= 6,
          "... an upload meanwhile works, on the allowed workers only: %r" % counts,
          repr(resp))
    m = stack.metrics() or {}
    check(not broker.joined(host, at) and m.get("safeshare_crypto_workers_alive") == 2,
          "the %s worker %s never joins (no joined line; workers_alive %r)"
          % (label, name, m.get("safeshare_crypto_workers_alive")))
    rc, err = r.health("crypto-worker", label)
    check(rc == 1, "safeshare health crypto-worker on its host: 1 (%s)" % err)
    p.stop(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
