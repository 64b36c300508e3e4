"""The docker-compose stack (compose/), checked without a Docker engine.

    test_compose.py config     --bin-dir BIN   the compose file itself
    test_compose.py image      --bin-dir BIN   the Dockerfile's run-time packages
    test_compose.py curve-keys --bin-dir BIN   compose/curve-keys.sh, init-keys.sh
    test_compose.py stack      --bin-dir BIN   the compose services, run outside containers

config: `docker-compose config -q` refuses compose/.env.example (its secrets
are empty) and takes the .env that compose/README.md's step 2 makes (its
sh block, run; Debian's docker-compose 1.29), then the resolved config (YAML): healthchecks,
one-shot services, the scalable crypto-worker, published ports, the
gateway's stop grace, each service address one its service binds, each
CURVE secret volume mounted only where it belongs, each named volume's
mount point made by the image for uid 10001, every SAFESHARE_* name
and value accepted by the binaries, and every safeshare command line of
the file (all that the safeshare image runs) one that `stack` runs.

image: for every binary the Dockerfile copies, each library `ldd` shows
comes from a package of compose/runtime-packages.txt (direct ones) or its
dependencies (the rest), or from the slim base; no -dev package, no
compiler in that list; the key scripts side by side on PATH.

curve-keys: compose/curve-keys.sh and init-keys.sh run for real into a temp
dir: the contract's layout, modes, idempotence, repair, a lone half refused.

stack: every safeshare service of the resolved compose file started from its
own command and environment, as in its container: paths moved under a temp
dir (each named volume one shared dir, the rest per container), service
names -> 127.0.0.1, the fixed ports -> free ones, PostgreSQL ->
a schema of SAFESHARE_TEST_PG_URL, MinIO -> the test S3 server, Mailpit ->
an aiosmtpd. Each crypto-worker replica runs in its own UTS namespace (its
own host name, as a container has). Every healthcheck is run as Docker
would, then the flow through the gateway with CURVE on everywhere.
Debian's python3 (/usr/bin/python3) has python3-yaml.
"""
import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
import stack as st  # noqa: E402
from checks import FAILURES, PASSED, check  # noqa: E402

COMPOSE_DIR = os.path.join(ROOT, "compose")
COMPOSE_FILE = os.path.join(COMPOSE_DIR, "docker-compose.yml")
ENV_EXAMPLE = os.path.join(COMPOSE_DIR, ".env.example")
NAMES = ["gateway", "auth", "crypto", "storage", "mailer", "crypto-worker"]
ALLOW = {
    "auth": ["gateway", "auth"],
    "crypto": ["gateway", "crypto-worker", "crypto"],
    "storage": ["gateway", "storage"],
    "mailer": ["gateway", "auth", "mailer"],
}
# The ZeroMQ services and the binary each runs.
SERVICES = {"auth": "safeshare-auth", "crypto": "safeshare-crypto",
            "storage": "safeshare-storage", "mailer": "safeshare-mailer",
            "gateway": "safeshare-gateway"}
PORTS = (5551, 5552, 5553, 5554, 5570, 8000)
# The named volumes of public keys (0755); every other one is 0700.
PUBLIC_VOLUMES = ("curve-public", "curve-allow")


def finish():
    print("%d passed, %d failed" % (PASSED[0], len(FAILURES)))
    return 0 if not FAILURES and PASSED[0] > 0 else 1


_README_ENV = []


def readme_env():
    """compose/.env as compose/README.md's step 2 makes it: its sh block
    (the one that starts with `cp .env.example .env`) run by bash in a
    temp dir holding a copy of .env.example. Made once; its path."""
    if _README_ENV:
        return _README_ENV[0]
    with open(os.path.join(COMPOSE_DIR, "README.md")) as f:
        blocks = re.findall(r"```sh\n(.*?)\n[ ]*```", f.read(), re.S)
    steps = [textwrap.dedent(b) for b in blocks if "cp .env.example .env" in b]
    if len(steps) != 1:
        raise AssertionError("compose/README.md: %d sh blocks with cp .env.example .env"
                             % len(steps))
    tmp = tempfile.mkdtemp(prefix="ss-env-", dir="/tmp")
    atexit.register(shutil.rmtree, tmp, True)
    shutil.copy(ENV_EXAMPLE, tmp)
    r = subprocess.run(["bash", "-ec", steps[0]], cwd=tmp, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("compose/README.md step 2 failed: " + r.stderr)
    _README_ENV.append(os.path.join(tmp, ".env"))
    return _README_ENV[0]


def env_values(path):
    with open(path) as f:
        return dict(l.rstrip("\n").split("=", 1) for l in f
                    if "=" in l and not l.lstrip().startswith("#"))


def compose_config(env_file=None):
    """The resolved config (docker-compose config) with the README's .env,
    as a dict."""
    env_file = env_file or readme_env()
    r = subprocess.run(["docker-compose", "-f", COMPOSE_FILE, "--env-file", env_file,
                        "config"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("docker-compose config failed: " + r.stderr)
    return yaml.safe_load(r.stdout)


def argv_of(value):
    """A command, entrypoint or healthcheck test as a list (CMD form)."""
    if value is None:
        return []
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return list(value)


def ours(argv):
    """A command line that runs one of our programs or scripts (also
    through a shell)."""
    return any(re.match(r"(safeshare\S*|\S*(curve|init)-keys\.sh)$", os.path.basename(a))
               for a in argv[:1]) or (argv[:2] == ["/bin/sh", "-c"] and
                                       re.search(r"\bsafeshare|keys\.sh", argv[2]))


def safeshare_commands(cfg):
    """Every command line in the file that runs our code: (service, kind,
    argv) with kind "run" (entrypoint + command) or "health"."""
    out = []
    for name, svc in sorted(cfg["services"].items()):
        run = argv_of(svc.get("entrypoint")) + argv_of(svc.get("command"))
        if ours(run):
            out.append((name, "run", run))
        test = argv_of((svc.get("healthcheck") or {}).get("test"))
        if test[:1] in (["CMD"], ["CMD-SHELL"]):
            test = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        if ours(test):
            out.append((name, "health", test))
    return out


# Command shapes `stack` runs (each one it finds in the file, as it is).
SHAPES = [
    ("run", lambda a: a == ["init-keys.sh", "/etc/safeshare/curve",
                            "/var/lib/safeshare/kek", "/var/lib/safeshare/jwt"]),
    ("run", lambda a: len(a) == 1 and a[0] in SERVICES.values()),
    ("run", lambda a: a == ["safeshare-crypto", "worker", "--connect", "tcp://crypto:5570"]),
    ("run", lambda a: a == ["safeshare", "--help"]),
    ("health", lambda a: len(a) == 3 and a[:2] == ["safeshare", "health"] and a[2] in NAMES),
]


def accepted_names():
    """The SAFESHARE_* names cm_config knows (its key table)."""
    with open(os.path.join(ROOT, "common", "cm_config.c")) as f:
        return set(re.findall(r'\{"(SAFESHARE_[A-Z0-9_]+)"', f.read()))


def config_accepts(bin_dir, env):
    """`safeshare --config FILE help` with FILE = these settings: exit code
    and stderr (an unknown name or a bad value is exit 2)."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        for k, v in sorted(env.items()):
            f.write("%s=%s\n" % (k, v))
        path = f.name
    try:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFESHARE_")}
        r = subprocess.run([os.path.join(bin_dir, "safeshare"), "--config", path, "help"],
                           env=clean, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr.strip()
    finally:
        os.unlink(path)


def volume_of(v):
    """A mount, long or short syntax: (source, target, read_only)."""
    if isinstance(v, dict):
        return (v.get("source"), v["target"], bool(v.get("read_only")))
    parts = v.split(":")
    return (parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(","))


def port_of(p):
    """A published port, long or short syntax: (host_ip, published, target)."""
    if isinstance(p, dict):
        return (p.get("host_ip", ""), int(p.get("published") or 0), int(p["target"]))
    parts = str(p).split("/")[0].split(":")
    parts = [""] * (3 - len(parts)) + parts
    return (parts[0], int(parts[1] or 0), int(parts[2]))


def seconds(duration):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(duration))
    if not m or not any(m.groups()):
        return None
    return int(m.group(1) or 0) * 60 + float(m.group(2) or 0)


def cmd_config(args):
    # The example's secrets are empty: copied as it is, compose refuses
    # to start before anything runs, naming the first one missing.
    r = subprocess.run(["docker-compose", "-f", COMPOSE_FILE, "--env-file", ENV_EXAMPLE,
                        "config", "-q"], capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr,
          "compose/.env.example as it is (secrets empty) is refused, naming "
          "POSTGRES_PASSWORD", r.stderr.strip())
    secrets = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "SAFESHARE_S3_ACCESS_KEY",
               "SAFESHARE_S3_SECRET_KEY")
    example = env_values(ENV_EXAMPLE)
    check(all(example.get(k) == "" for k in secrets),
          "compose/.env.example leaves every secret empty: %s" % ", ".join(secrets),
          repr({k: example.get(k) for k in secrets}))
    made = env_values(readme_env())
    check(all(re.fullmatch(r"[0-9a-f]{20,48}", made.get(k, "")) for k in secrets) and
          len({made.get(k) for k in secrets}) == len(secrets),
          "compose/README.md step 2 (cp + sed) fills every secret, each its own random hex")
    r = subprocess.run(["docker-compose", "-f", COMPOSE_FILE, "--env-file", readme_env(),
                        "config", "-q"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "docker-compose config -q with the .env README step 2 makes",
          r.stderr.strip())

    cfg = compose_config()
    svcs = cfg["services"]
    oneshots = {n for n, s in svcs.items() if s.get("restart") == "no"}
    check(oneshots == {"keys-init", "minio-init", "cli"},
          "one-shot services (restart: \"no\") are keys-init, minio-init, cli",
          str(sorted(oneshots)))
    for name, svc in sorted(svcs.items()):
        if name in oneshots:
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if test and "health" in test:
            # `safeshare health` gives up after 3 s by default: Docker's
            # timeout must leave it that time, or a slow answer reads as a hang.
            t = seconds((svc.get("healthcheck") or {}).get("timeout", "30s"))
            check(t is not None and t > 3, "%s: healthcheck timeout %ss > 3 s" % (name, t))
        check(bool(test) and test[0] in ("CMD", "CMD-SHELL") and
              not svc["healthcheck"].get("disable"),
              "%s: has a healthcheck" % name, str(svc.get("healthcheck")))
        check(svc.get("restart") in ("unless-stopped", "always"),
              "%s: restart policy %s" % (name, svc.get("restart")))
    for name, svc in sorted(svcs.items()):
        for dep, how in sorted((svc.get("depends_on") or {}).items()):
            want = ("service_completed_successfully" if dep in oneshots
                    else "service_healthy")
            check(how.get("condition") == want,
                  "%s waits for %s: %s" % (name, dep, want), str(how))
    check(set(svcs["gateway"]["depends_on"]) == {"auth", "crypto", "storage", "mailer"},
          "the gateway starts after auth, crypto, storage, mailer are healthy")

    worker = svcs["crypto-worker"]
    check("container_name" not in worker and not worker.get("ports"),
          "crypto-worker is scalable: no container_name, no published port")
    for name, svc in sorted(svcs.items()):
        ports = [port_of(p) for p in svc.get("ports") or []]
        if name == "nginx":
            targets = sorted(t for _, _, t in ports)
            check(targets == [80, 443], "nginx publishes 443 and 80", str(ports))
        elif name == "mailpit":
            check(ports == [("127.0.0.1", 8025, 8025)],
                  "mailpit publishes its web view on 127.0.0.1:8025 only", str(ports))
        else:
            check(not ports, "%s publishes no port" % name, str(ports))

    gw = svcs["gateway"]
    grace_ms = int(gw["environment"]["SAFESHARE_SHUTDOWN_GRACE_MS"])
    stop_s = seconds(gw.get("stop_grace_period", "10s"))
    check(stop_s is not None and stop_s * 1000 > grace_ms,
          "gateway stop_grace_period %s > SAFESHARE_SHUTDOWN_GRACE_MS %d ms"
          % (gw.get("stop_grace_period"), grace_ms))
    check(gw["environment"]["SAFESHARE_PUBLIC_URL"].startswith("https://"),
          "SAFESHARE_PUBLIC_URL is https")
    nginx_addr = svcs["nginx"]["networks"]["front"]["ipv4_address"]
    check(gw["environment"]["SAFESHARE_TRUSTED_PROXIES"] == nginx_addr,
          "the gateway trusts exactly nginx's address %s" % nginx_addr)
    # Every service address a setting or command names (HOST:PORT, one of
    # our ports) is one that service binds (0.0.0.0:PORT in its settings):
    # the stack test maps every such host to 127.0.0.1, so a wrong name or
    # port would pass there.
    our_ports = "|".join(map(str, PORTS))
    binds = {}
    for name, svc in svcs.items():
        for v in (svc.get("environment") or {}).values():
            binds.setdefault(name, set()).update(
                int(p) for p in re.findall(r"\b0\.0\.0\.0:(%s)\b" % our_ports, str(v)))
    calls = set()
    for name, svc in sorted(svcs.items()):
        text = " ".join([str(v) for v in (svc.get("environment") or {}).values()] +
                        argv_of(svc.get("entrypoint")) + argv_of(svc.get("command")))
        for host, port in sorted(set(re.findall(r"\b([a-z][a-z0-9-]*):(%s)\b" % our_ports,
                                                  text))):
            calls.add((name, host))
            check(int(port) in binds.get(host, ()),
                  "%s reaches %s:%s, which the service %s binds" % (name, host, port, host))
    # The contract's "who calls whom".
    want = {("gateway", s) for s in ("auth", "crypto", "storage", "mailer")} | {
        ("auth", "mailer"), ("crypto-worker", "crypto")}
    check(want <= calls, "the gateway reaches auth, crypto, storage, mailer; auth the "
          "mailer; crypto-worker crypto", str(sorted(want - calls)))
    check(set(svcs["nginx"]["networks"]) == {"front"} and
          set(gw["networks"]) == {"front", "back"},
          "only nginx and the gateway share the network front")

    # CURVE: on in every ZeroMQ process; each secret in a volume of its own,
    # mounted read-only only in its service (and keys-init, which makes it).
    mounts = {}
    for name, svc in svcs.items():
        for v in svc.get("volumes") or []:
            source, target, ro = volume_of(v)
            mounts.setdefault(source, []).append((name, target, ro))
    for name in list(SERVICES) + ["crypto-worker"]:
        env = svcs[name]["environment"]
        key = env.get("SAFESHARE_CURVE_SECRET_KEY", "")
        check(key == "/etc/safeshare/curve/%s/%s.key_secret" % (name, name),
              "%s: CURVE on with its own secret key" % name, key)
        vol = "curve-" + name
        users = sorted((n, t, ro) for n, t, ro in mounts.get(vol, []))
        want = sorted([(name, "/etc/safeshare/curve/" + name, True),
                       ("keys-init", "/etc/safeshare/curve/" + name, False)])
        check(users == want, "volume %s is mounted only in %s (ro) and keys-init"
              % (vol, name), str(users))
        if name != "gateway" and name != "crypto-worker":
            check(env.get("SAFESHARE_CURVE_ALLOW_DIR") ==
                  "/etc/safeshare/curve/allow/" + name,
                  "%s: accepts the keys of allow/%s" % (name, name))
    # A new named volume takes the owner and mode of the image's directory
    # it is mounted on; one the image lacks would be root's, unwritable
    # for uid 10001 (which the stack test, as root, would never see).
    _, runtime = dockerfile_stages()
    made = image_dirs(runtime[0] if runtime else "")
    image = svcs["gateway"].get("image")
    for vol, target in sorted({(vol, t) for vol, users in mounts.items()
                               if vol in cfg.get("volumes", {})
                               for n, t, _ in users if svcs[n].get("image") == image}):
        want = 0o755 if vol in PUBLIC_VOLUMES else 0o700
        check(made.get(target) == want, "the image makes %s (volume %s) for uid 10001, "
              "mode %o" % (target, vol, want), "mode %s" % made.get(target))
    check(sorted(n for n, _, _ in mounts.get("kek", [])) == ["cli", "crypto", "keys-init"],
          "the KEK ring's volume is mounted only in crypto, cli and keys-init")
    check(sorted(n for n, _, _ in mounts.get("jwt", [])) == ["auth", "cli", "keys-init"],
          "the JWT pair's volume is mounted only in auth, cli and keys-init")

    # Every SAFESHARE_* name in the file, the env example and the Dockerfile
    # is one the binaries know; every service's settings are accepted.
    known = accepted_names()
    texts = ""
    for p in (COMPOSE_FILE, ENV_EXAMPLE, os.path.join(COMPOSE_DIR, "Dockerfile")):
        with open(p) as f:
            texts += f.read()
    named = set(re.findall(r"\bSAFESHARE_[A-Z0-9_]*[A-Z0-9]\b", texts))
    check(named and named <= known, "every SAFESHARE_* name in compose/ is a config key",
          "unknown: %s" % sorted(named - known))
    # Values too, with the key files in place (keys-init's command run into a
    # temp dir, each container path moved there as the stack test does).
    tmp = tempfile.mkdtemp(prefix="ss-cmpcfg-", dir="/tmp")
    try:
        out = Outside(cfg, args.bin_dir, tmp)
        r = out.run("keys-init", out.command("keys-init"))
        check(r.returncode == 0, "keys-init's command makes the keys", r.stdout + r.stderr)
        for name, svc in sorted(svcs.items()):
            names = [k for k in (svc.get("environment") or {}) if k.startswith("SAFESHARE_")]
            if not names:
                continue
            env = {k: v for k, v in out.env(name).items() if k in names}
            rc, err = config_accepts(args.bin_dir, env)
            check(rc == 0, "%s: the binaries accept its %d SAFESHARE_* settings"
                  % (name, len(env)), err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rc, err = config_accepts(args.bin_dir, {"SAFESHARE_NO_SUCH_KEY": "1"})
    check(rc == 2, "(the same check refuses an unknown name)", err)

    cmds = safeshare_commands(cfg)
    for name, kind, argv in cmds:
        check(any(k == kind and fits(argv) for k, fits in SHAPES),
              "%s %s: %s is a shape the stack test runs" % (name, kind, " ".join(argv)))
    have = {(n, k) for n, k, _ in cmds}
    # Whatever runs in the safeshare image is our code, however the line is
    # written: each such service's command (and a long-running one's
    # healthcheck) must be among the lines found above, so none escapes them.
    ours_image = sorted(n for n, s in svcs.items() if s.get("image") == image)
    check(set(SERVICES) | {"crypto-worker"} <= set(ours_image),
          "the services and crypto-worker run the image %s" % image, str(ours_image))
    for n in ours_image:
        kinds = ["run"] if n in oneshots else ["run", "health"]
        check(all((n, k) in have for k in kinds),
              "%s (image %s): its %s a safeshare command line"
              % (n, image, "command and healthcheck are each" if len(kinds) > 1
                 else "command is"))
    return finish()


# ---------------------------------------------------------------- image

def runtime_packages():
    pkgs = []
    with open(os.path.join(COMPOSE_DIR, "runtime-packages.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                pkgs.append(line)
    return pkgs


_owners = {}


def dpkg_owner(path):
    """The package that installed the library at path (merged /usr: also
    tried under /lib and /usr/lib), or None."""
    if path in _owners:
        return _owners[path]
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/lib/"):
            cands.append(p[4:])
        elif p.startswith("/lib"):
            cands.append("/usr" + p)
    owner = None
    for p in cands:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            owner = r.stdout.split(":", 1)[0].strip().split(",")[0].strip()
            break
    _owners[path] = owner
    return owner


def dpkg_db():
    """Installed packages: name -> (Essential, Priority, Depends + Pre-Depends)."""
    r = subprocess.run(["dpkg-query", "-W", "-f",
                        "${Package}\t${Status}\t${Essential}\t${Priority}\t"
                        "${Depends}, ${Pre-Depends}\n"], capture_output=True, text=True)
    db = {}
    for line in r.stdout.splitlines():
        name, status, essential, priority, deps = line.split("\t")
        if status == "install ok installed":
            db[name] = (essential, priority, deps)
    return db


def depends_closure(db, pkgs):
    """pkgs and everything they depend on (of alternatives, the installed one)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen or p not in db:
            continue
        seen.add(p)
        for group in db[p][2].split(","):
            alts = [a.strip().split(" ")[0].split(":")[0] for a in group.split("|")]
            for a in alts:
                if a in db:
                    todo.append(a)
                    break
    return seen


def dockerfile_stages():
    """compose/Dockerfile's stages (each the text after its FROM) and the
    runtime stages among them."""
    with open(os.path.join(COMPOSE_DIR, "Dockerfile")) as f:
        stages = re.split(r"(?m)^FROM ", f.read())
    return stages, [s for s in stages if re.match(r"\S+ AS runtime\b", s)]


def image_dirs(runtime):
    """The directories the runtime stage makes for uid 10001
    (`install -d -o 10001 -g 10001 -m MODE DIR...`, also in a `for` loop):
    path -> mode."""
    text = runtime.replace("\\\n", " ")
    dirs = {}
    for m in re.finditer(r"(?:for (\w+) in ([^;]*); do\s+)?"
                         r"install -d -o 10001 -g 10001 -m ([0-7]+) ([^;&]*)", text):
        var, values, mode, paths = m.groups()
        for p in paths.split():
            for v in (values.split() if var else [None]):
                dirs[p.replace("$" + var, v) if var else p] = int(mode, 8)
    return dirs


def cmd_image(args):
    stages, runtime = dockerfile_stages()
    check(len(runtime) == 1, "the Dockerfile has a runtime stage")
    runtime = runtime[0] if runtime else ""
    check(re.match(r"debian:12-slim AS runtime", runtime) is not None,
          "the runtime stage is debian:12-slim")
    check(stages[-1] == runtime, "the runtime stage is the last one (the default target)")
    check("runtime-packages.txt" in runtime and "--no-install-recommends" in runtime,
          "the runtime stage installs compose/runtime-packages.txt, no recommends")
    check(re.search(r"(?m)^USER 10001", runtime) is not None, "the runtime stage runs as uid 10001")
    # keys-init runs init-keys.sh, which runs curve-keys.sh from its own dir.
    check(re.search(r"(?m)^COPY compose/curve-keys\.sh compose/init-keys\.sh /usr/local/bin/$",
                    runtime) is not None,
          "the image has curve-keys.sh and init-keys.sh side by side on PATH")
    check(re.search(r"install-deps|gcc|cmake|build-essential", runtime) is None,
          "the runtime stage installs no build tools")
    build = [s for s in stages if re.match(r"debian:12 AS build\b", s)]
    check(len(build) == 1 and "scripts/install-deps.sh" in build[0] and
          "CMAKE_BUILD_TYPE=Release" in build[0],
          "the build stage is debian:12 with scripts/install-deps.sh and a Release build")

    pkgs = runtime_packages()
    bad = [p for p in pkgs if p.endswith("-dev") or
           re.fullmatch(r"(gcc|g\+\+|cpp|clang|make|cmake|binutils|build-essential)(-\d+)?", p)]
    check(not bad, "no -dev package and no compiler in runtime-packages.txt", str(bad))
    db = dpkg_db()
    missing = [p for p in pkgs if p not in db]
    check(not missing, "every runtime package exists in Debian 12 (installed here)", str(missing))
    closure = depends_closure(db, pkgs)
    # What debian:12-slim already holds: the essential and required
    # packages (a minbase system) and what they depend on.
    base = depends_closure(db, [p for p, (ess, prio, _) in db.items()
                                if ess == "yes" or prio == "required"])

    copied = re.findall(r"/build/bin/(\S+)", runtime)
    check(sorted(copied) == sorted(["safeshare"] + list(SERVICES.values())),
          "the image gets the CLI and the five service binaries", str(copied))
    for b in copied:
        path = os.path.join(args.bin_dir, b)
        if not check(os.access(path, os.X_OK), "%s is built" % b):
            continue
        needed = set(re.findall(r"\(NEEDED\).*\[(.+)\]",
                                subprocess.run(["readelf", "-d", path], capture_output=True,
                                               text=True).stdout))
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        libs = re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M)
        problems = []
        for soname, lib in libs:
            if args.sanitize and re.match(r"lib(asan|ubsan)\.so", soname):
                continue  # the sanitizer runtime: never in the image's build
            owner = dpkg_owner(lib)
            if owner is None:
                problems.append("%s: no package" % lib)
                continue
            owner = owner.split(":")[0]
            if soname in needed:
                if owner not in pkgs and owner not in base:
                    problems.append("%s (direct) from %s, not listed" % (soname, owner))
            elif owner not in closure and owner not in base:
                problems.append("%s from %s, not a dependency of the list" % (soname, owner))
            if owner.endswith("-dev"):
                problems.append("%s from a -dev package %s" % (soname, owner))
        check(libs and not problems, "%s: its %d libraries come from the runtime packages"
              % (b, len(libs)), "; ".join(problems))
    if args.sanitize:
        print("note: sanitized build, libasan/libubsan not checked (the image is never one)")
    return finish()


# ---------------------------------------------------------------- curve keys

def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def snapshot(d):
    out = {}
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def tool_env(bin_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESHARE_")}
    env["PATH"] = os.path.abspath(bin_dir) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    return env


def cmd_curve_keys(args):
    tmp = tempfile.mkdtemp(prefix="ss-curve-")
    try:
        env = tool_env(args.bin_dir)
        script = os.path.join(COMPOSE_DIR, "curve-keys.sh")
        d = os.path.join(tmp, "curve")
        r = subprocess.run([script, d], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "curve-keys.sh DIR: exit 0", r.stderr)
        for n in NAMES:
            pd = os.path.join(d, n)
            check(os.path.isdir(pd) and mode(pd) == 0o700, "%s/ is 0700" % n)
            sec, pub = os.path.join(pd, n + ".key_secret"), os.path.join(pd, n + ".key")
            ok = os.path.isfile(sec) and os.path.isfile(pub)
            check(ok and mode(sec) == 0o600 and mode(pub) == 0o644,
                  "%s/%s.key_secret 0600, %s.key 0644" % (n, n, n))
            if ok:
                with open(sec) as f:
                    s = f.read()
                with open(pub) as f:
                    p = f.read()
                m = re.search(r'public-key = "(.{40})"', p)
                check(m and 'secret-key = "' in s and "secret-key" not in p and
                      m.group(1) in s, "%s: a czmq cert pair, 40-character Z85 keys" % n)
        got = sorted(os.listdir(os.path.join(d, "public")))
        check(got == ["auth.key", "crypto.key", "mailer.key", "storage.key"],
              "public/ holds auth, crypto, storage, mailer", str(got))
        for svc, names in ALLOW.items():
            ad = os.path.join(d, "allow", svc)
            got = sorted(os.listdir(ad)) if os.path.isdir(ad) else None
            check(got == sorted(n + ".key" for n in names),
                  "allow/%s holds %s" % (svc, ", ".join(names)), str(got))
        copies_ok = all(
            open(os.path.join(d, "public", f), "rb").read() ==
            open(os.path.join(d, f[:-4], f), "rb").read()
            for f in os.listdir(os.path.join(d, "public"))) and all(
            open(os.path.join(d, "allow", svc, n + ".key"), "rb").read() ==
            open(os.path.join(d, n, n + ".key"), "rb").read() and
            mode(os.path.join(d, "allow", svc, n + ".key")) == 0o644
            for svc, names in ALLOW.items() for n in names)
        check(copies_ok, "public/ and allow/ hold 0644 copies of the public keys, no secret")
        check(not any("secret" in f for _, _, fs in os.walk(os.path.join(d, "public"))
                      for f in fs) and
              not any("secret" in f for _, _, fs in os.walk(os.path.join(d, "allow"))
                      for f in fs), "no secret file outside the private dirs")

        before = snapshot(d)
        r = subprocess.run([script, d], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and snapshot(d) == before and r.stdout.count(": kept") == 6,
              "a second run keeps every key, changes nothing", r.stdout + r.stderr)
        os.unlink(os.path.join(d, "allow", "auth", "gateway.key"))
        os.unlink(os.path.join(d, "public", "crypto.key"))
        with open(os.path.join(d, "allow", "auth", "gateway-next.key"), "w") as f:
            f.write("an operator's extra key\n")
        r = subprocess.run([script, d], env=env, capture_output=True, text=True, timeout=60)
        after = snapshot(d)
        extra = after.pop(os.path.join("allow", "auth", "gateway-next.key"), None)
        check(r.returncode == 0 and after == before and extra is not None,
              "a run fills in removed copies, keeps the keys and an operator's extra file")
        os.unlink(os.path.join(d, "mailer", "mailer.key_secret"))
        r = subprocess.run([script, d], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "half" in r.stderr and
              not os.path.exists(os.path.join(d, "mailer", "mailer.key_secret")),
              "a lone half of a pair is refused (exit 1), not replaced", r.stderr)
        r = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 2, "no DIR: usage, exit 2")

        # init-keys.sh: CURVE + KEK ring + JWT pair, apart.
        init = os.path.join(COMPOSE_DIR, "init-keys.sh")
        c, k, j = (os.path.join(tmp, x) for x in ("c", "kek", "jwt"))
        r = subprocess.run([init, c, k, j], env=env, capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0, "init-keys.sh: exit 0", r.stdout + r.stderr)
        check(sorted(os.listdir(k)) == ["kek.ring"] and mode(k) == 0o700 and
              mode(os.path.join(k, "kek.ring")) == 0o600,
              "the KEK dir (0700) holds only kek.ring (0600)", str(os.listdir(k)))
        check(sorted(os.listdir(j)) == ["jwt-es256.pem", "jwt-es256.pub"] and
              mode(j) == 0o700 and mode(os.path.join(j, "jwt-es256.pem")) == 0o600,
              "the JWT dir (0700) holds only the pair (.pem 0600)", str(os.listdir(j)))
        check(os.path.isfile(os.path.join(c, "public", "auth.key")),
              "init-keys.sh made the CURVE keys")
        r2 = subprocess.run([os.path.join(args.bin_dir, "safeshare"), "keys", "rotate-jwt"],
                            env=dict(env, SAFESHARE_KEY_DIR=j), capture_output=True,
                            text=True, timeout=60)
        check(r2.returncode == 0, "`safeshare keys rotate-jwt` works on the JWT dir", r2.stderr)
        before = snapshot(tmp)
        r = subprocess.run([init, c, k, j], env=env, capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 0 and snapshot(tmp) == before and "kept" in r.stdout,
              "a second init-keys.sh run keeps every key", r.stdout + r.stderr)
        os.unlink(os.path.join(j, "jwt-es256.pem"))
        os.unlink(os.path.join(j, "jwt-es256.pub"))
        r = subprocess.run([init, c, k, j], env=env, capture_output=True, text=True,
                           timeout=60)
        after = snapshot(tmp)
        check(r.returncode == 0 and after.get("kek/kek.ring") == before["kek/kek.ring"] and
              "jwt/jwt-es256.pem" in after and sorted(os.listdir(k)) == ["kek.ring"],
              "a missing JWT pair is made again, the ring kept, nothing left over",
              r.stdout + r.stderr)
        os.unlink(os.path.join(j, "jwt-es256.pub"))
        r = subprocess.run([init, c, k, j], env=env, capture_output=True, text=True,
                           timeout=60)
        check(r.returncode == 1 and "half" in r.stderr, "a lone JWT half is refused", r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


# ---------------------------------------------------------------- stack

class Outside:
    """Runs compose services as plain processes: the container's paths and
    addresses mapped to this machine, nothing else changed."""

    def __init__(self, cfg, bin_dir, tmp, db_url=None, s3=None, smtp_port=None):
        """Without db_url, s3, smtp_port: those settings are kept as they are."""
        self.cfg = cfg
        self.bin_dir = os.path.abspath(bin_dir)
        self.tmp = tmp
        self.ports = {p: st.free_port() for p in PORTS}
        self.db_url, self.s3, self.smtp_port = db_url, s3, smtp_port
        self.procs = []
        self.ran = set()
        # Named volumes: one dir each, with the mode the image's mount point
        # has; each container a root dir, with a symlink where a volume is
        # mounted (so a path under a mount point, or a mount point under a
        # path, resolves as in the container). Read-only is not enforced.
        for v in cfg.get("volumes", {}):
            os.makedirs(os.path.join(tmp, "vol", v), exist_ok=True)
            os.chmod(os.path.join(tmp, "vol", v),
                     0o755 if v in PUBLIC_VOLUMES else 0o700)
        for svc, conf in cfg["services"].items():
            for v in conf.get("volumes") or []:
                source, target, _ = volume_of(v)
                if source not in cfg.get("volumes", {}):
                    continue  # a bind mount of a file of compose/: not ours to run
                link = self.path(svc, target)
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.join(tmp, "vol", source), link)

    def path(self, svc, p):
        return os.path.join(self.tmp, "ctr", svc) + p

    def value(self, svc, k, v):
        v = str(v)
        if v.startswith("/"):
            return self.path(svc, v)
        if self.db_url is None:
            return v
        if v.startswith("postgresql://"):
            return self.db_url
        if k == "SAFESHARE_S3_ENDPOINT":
            return self.s3["SAFESHARE_TEST_S3_ENDPOINT"]
        for name in ("BUCKET", "REGION", "ACCESS_KEY", "SECRET_KEY"):
            if k == "SAFESHARE_S3_" + name:
                return self.s3["SAFESHARE_TEST_S3_" + name]
        if k == "SAFESHARE_SMTP_URL":
            return re.sub(r"mailpit:1025", "127.0.0.1:%d" % self.smtp_port, v)
        return self.address(v)

    def address(self, v):
        def sub(m):
            host = m.group(1)
            host = host if host == "0.0.0.0" else "127.0.0.1"
            return "%s:%d" % (host, self.ports[int(m.group(2))])
        return re.sub(r"\b([a-z0-9.-]+):(%s)\b" % "|".join(map(str, PORTS)), sub, v)

    def env(self, svc, drop=()):
        env = {"PATH": self.bin_dir + ":" + COMPOSE_DIR + ":/usr/bin:/bin",
               "HOME": self.tmp, "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for k, v in (self.cfg["services"][svc].get("environment") or {}).items():
            if k not in drop:
                env[k] = self.value(svc, k, v)
        os.makedirs(self.path(svc, "/var/lib/safeshare"), exist_ok=True)
        os.chmod(self.path(svc, "/var/lib/safeshare"), 0o700)
        return env

    def argv(self, svc, argv):
        out = []
        for a in argv:
            if a.startswith("/etc/safeshare") or a.startswith("/var/lib/safeshare"):
                out.append(self.path(svc, a))
            else:
                out.append(self.address(a))
        return out

    def command(self, svc):
        s = self.cfg["services"][svc]
        return argv_of(s.get("entrypoint")) + argv_of(s.get("command"))

    def healthcheck(self, svc):
        return argv_of(self.cfg["services"][svc]["healthcheck"]["test"])[1:]

    def run(self, svc, argv, uts=None, drop=(), **kw):
        """argv (a compose command line) to completion in svc's setting."""
        self.ran.add((svc, tuple(argv)))
        full = self.argv(svc, argv)
        if uts:
            full = ["nsenter", "--uts", "--target", str(uts)] + full
        return subprocess.run(full, env=self.env(svc, drop), capture_output=True,
                              text=True, timeout=kw.pop("timeout", 60), **kw)

    def start(self, svc, hostname=None):
        argv = self.command(svc)
        self.ran.add((svc, tuple(argv)))
        full = self.argv(svc, argv)
        if hostname:
            # A container's own host name, for the worker's name host:pid:thread.
            full = ["unshare", "--uts", "/bin/sh", "-c",
                    'hostname "$0" && exec "$@"', hostname] + full
        log = open(os.path.join(self.tmp, "%s%s.log" % (svc, hostname or "")), "ab")
        p = subprocess.Popen(full, env=self.env(svc), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((svc, p, log))
        return p

    def wait_healthy(self, svc, proc, uts=None, timeout=30):
        """Runs the service's healthcheck, as Docker does, until it passes."""
        deadline = time.monotonic() + timeout
        r = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False, "%s exited with %d:\n%s" % (svc, proc.returncode, self.log(svc))
            r = self.run(svc, self.healthcheck(svc), uts=uts)
            if r.returncode == 0:
                return True, ""
            time.sleep(0.5)
        return False, "last: exit %s %s\n%s" % (r and r.returncode, r and r.stderr,
                                                self.log(svc))

    def log(self, svc):
        out = ""
        for f in sorted(os.listdir(self.tmp)):
            if f.startswith(svc) and f.endswith(".log"):
                with open(os.path.join(self.tmp, f), "rb") as fh:
                    out += fh.read().decode(errors="replace")[-3000:]
        return out

    def stop(self, proc, timeout=15):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self):
        for _, p, log in reversed(self.procs):
            self.stop(p)
            log.close()


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def s3_peer(tmp):
    """The test S3 server of scripts/test.sh, or one of our own."""
    if os.environ.get("SAFESHARE_TEST_S3_ENDPOINT"):
        return {k: v for k, v in os.environ.items() if k.startswith("SAFESHARE_TEST_S3_")}, None
    d = os.path.join(tmp, "s3")
    os.makedirs(d)
    r = subprocess.run([os.path.join(ROOT, "scripts", "s3-test-server.sh"), "start", d,
                        str(st.free_port())], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("s3-test-server.sh failed: " + r.stderr)
    return dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l), d


def cmd_stack(args):
    base = os.environ.get("SAFESHARE_TEST_PG_URL")
    if not base:
        print("FAIL - SAFESHARE_TEST_PG_URL is not set: run scripts/test.sh, which starts "
              "a PostgreSQL cluster (the compose stack keeps everything in PostgreSQL)")
        print("0 passed, 1 failed")
        return 1
    if os.geteuid() != 0 or subprocess.run(["unshare", "--uts", "true"]).returncode != 0:
        print("FAIL - cannot make UTS namespaces (unshare --uts needs root): each "
              "crypto-worker needs a host name of its own, as in its container")
        print("0 passed, 1 failed")
        return 1
    cfg = compose_config()
    tmp = tempfile.mkdtemp(prefix="ss-cmp-", dir="/tmp")
    schema, db_url = st.pg_schema(base)
    s3, s3_dir = s3_peer(tmp)
    smtp_port = st.free_port()
    maildir = os.path.join(tmp, "maildir")
    smtp = subprocess.Popen([os.path.join(ROOT, "scripts", "smtp-test-server.sh"),
                             str(smtp_port), maildir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    out = Outside(cfg, args.bin_dir, tmp, db_url, s3, smtp_port)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and smtp.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", smtp_port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        # keys-init, twice (it runs before every `up`).
        first = out.run("keys-init", out.command("keys-init"))
        check(first.returncode == 0, "keys-init: exit 0", first.stdout + first.stderr)
        again = out.run("keys-init", out.command("keys-init"))
        check(again.returncode == 0 and "created" not in again.stdout and
              "kept" in again.stdout, "keys-init again: every key kept", again.stdout)

        order = ["crypto", "storage", "mailer", "auth"]
        procs = {}
        for svc in order:
            procs[svc] = out.start(svc)
            ok, why = out.wait_healthy(svc, procs[svc])
            check(ok, "%s: healthy by its healthcheck (%s)"
                  % (svc, " ".join(out.healthcheck(svc))), why)
        # Without its CURVE key a client is refused: CURVE is really on.
        r = out.run("auth", ["safeshare", "health", "auth", "--timeout-ms", "1500"],
                    drop=("SAFESHARE_CURVE_SECRET_KEY",))
        check(r.returncode == 1, "health without a CURVE key: auth does not answer (exit 1)",
              r.stderr)
        procs["gateway"] = out.start("gateway")
        ok, why = out.wait_healthy("gateway", procs["gateway"])
        check(ok, "gateway: healthy by its healthcheck", why)
        gw = "http://127.0.0.1:%d" % out.ports[8000]
        deadline, status = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            status, _ = http("GET", gw + "/readyz")
            if status == 200:
                break
            time.sleep(0.3)
        check(status == 200, "gateway /readyz 200: every service answers over CURVE")

        # Two crypto-worker replicas, each with its own host name.
        for i in (1, 2):
            p = out.start("crypto-worker", hostname="worker%d" % i)
            ok, why = out.wait_healthy("crypto-worker", p, uts=p.pid)
            check(ok, "crypto-worker replica %d: healthy by its healthcheck" % i, why)
        lone = subprocess.Popen(["unshare", "--uts", "/bin/sh", "-c",
                                 "hostname no-worker-here && exec sleep 60"])
        time.sleep(0.2)
        r = out.run("crypto-worker", out.healthcheck("crypto-worker"), uts=lone.pid)
        lone.kill()
        lone.wait()
        check(r.returncode == 1, "crypto-worker healthcheck on a host without a worker: 1",
              r.stderr)

        # The cli service: its default command, then the README's user add.
        r = out.run("cli", out.command("cli"))
        check(r.returncode == 0 and "usage" in (r.stdout + r.stderr).lower(),
              "cli: `safeshare --help` runs")
        cli = out.command("cli")[:1]
        r = out.run("cli", cli + ["user", "add", "ops@example.com", "--role", "ops"],
                    input="a long ops password\n")
        check(r.returncode == 0, "cli: user add ops@example.com --role ops", r.stderr)

        # The flow through the gateway: login, upload, download.
        st_, body = http("POST", gw + "/api/auth/login", json.dumps(
            {"email": "ops@example.com", "password": "a long ops password"}).encode(),
            {"Content-Type": "application/json"})
        check(st_ == 200, "login 200", body[:200])
        token = json.loads(body).get("access", "") if st_ == 200 else ""
        data = os.urandom(3 * 1024 * 1024 + 123)
        st_, body = http("POST", gw + "/api/files", data, {
            "Authorization": "Bearer " + token, "Content-Type": "application/octet-stream",
            "X-File-Name": "compose.bin"}, timeout=60)
        check(st_ == 201, "upload 3 MiB 201 (crypto, storage on S3, over CURVE)", body[:200])
        fid = json.loads(body).get("id") if st_ == 201 else None
        st_, got = http("GET", "%s/api/files/%s/content" % (gw, fid), None,
                        {"Authorization": "Bearer " + token}, timeout=60)
        check(st_ == 200 and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
              "download 200, byte-exact")

        # Signup mail reaches the SMTP server (Mailpit's place).
        st_, body = http("POST", gw + "/api/auth/signup", json.dumps(
            {"email": "client@example.com", "password": "another long password"}).encode(),
            {"Content-Type": "application/json"})
        check(st_ == 201, "signup 201", body[:200])
        deadline, mails = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            nd = os.path.join(maildir, "new")
            mails = os.listdir(nd) if os.path.isdir(nd) else []
            if mails:
                break
            time.sleep(0.3)
        check(len(mails) == 1, "the verification mail went over SMTP (?tls=none)")

        # A stopped service fails its healthcheck; started again, it passes.
        rc = out.stop(procs["mailer"])
        check(rc == 0, "mailer stops on SIGTERM with 0")
        r = out.run("mailer", out.healthcheck("mailer") + ["--timeout-ms", "1500"])
        check(r.returncode == 1 and r.stderr.strip(),
              "mailer healthcheck with the mailer stopped: exit 1 and a reason", r.stderr)
        procs["mailer"] = out.start("mailer")
        ok, why = out.wait_healthy("mailer", procs["mailer"])
        check(ok, "mailer healthy again after a restart", why)

        for svc, kind, argv in safeshare_commands(cfg):
            check((svc, tuple(argv)) in out.ran,
                  "ran %s's %s command line: %s" % (svc, kind, " ".join(argv)))
        # `docker compose stop`: SIGTERM, in reverse order of start.
        for svc, p, _ in reversed(out.procs):
            if p.poll() is None:
                rc = out.stop(p, timeout=45)
                check(rc == 0, "%s (pid %d) stops on SIGTERM with 0" % (svc, p.pid),
                      "exit %s\n%s" % (rc, out.log(svc)[-1500:]))
    finally:
        out.stop_all()
        smtp.terminate()
        smtp.wait()
        if s3_dir:
            subprocess.run([os.path.join(ROOT, "scripts", "s3-test-server.sh"), "stop", s3_dir],
                           capture_output=True)
        st.pg_drop_schema(base, schema)
        if FAILURES:
            print("logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return finish()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("config", "image", "curve-keys", "stack"))
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--sanitize", default="OFF",
                    help="ON: a sanitized build (libasan/libubsan not checked)")
    args = ap.parse_args()
    args.sanitize = args.sanitize.upper() in ("ON", "1", "TRUE", "YES")
    try:
        return {"config": cmd_config, "image": cmd_image, "curve-keys": cmd_curve_keys,
                "stack": cmd_stack}[args.what](args)
    except AssertionError as e:
        check(False, "unexpected failure", str(e))
        return finish()


if __name__ == "__main__":
    sys.exit(main())
