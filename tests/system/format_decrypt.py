#!/usr/bin/env python3
"""An independent safeshare blob decryptor, written from docs/format.md only.

It shares no code with the C implementation: Python's `cryptography`
AESGCM plus what the format page says. Three uses:

  decrypt   KEK ring file + wrapped DEK (hex) + file id + blob -> plaintext
            format_decrypt.py decrypt --ring kek.ring --wrapped-dek HEX
                --file-id HEX --blob BLOB [--kek-id ID] [--size N]
                [--range A-Z] [--out PATH]      (stdout without --out)
  vectors   checks the test vectors of docs/format.md (read from the page)
            format_decrypt.py vectors [--doc docs/format.md]
  check     the CTest `format_independent`: the vectors, then blobs sealed
            by our C code (tests/system/format_seal) decrypted here and
            compared with their plaintext, and tampered copies refused.
            format_decrypt.py check --doc docs/format.md --seal-helper BIN

Exit status: 0 ok, 1 failure (authentication, format, mismatch), 2 usage.
Needs `cryptography` (Debian: python3-cryptography, used by /usr/bin/python3).
"""

import argparse
import hashlib
import os
import re
import struct
import subprocess
import sys
import tempfile

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # said plainly: a missing library is a failure, not a skip
    sys.stderr.write("format_decrypt: python 'cryptography' is missing "
                     "(apt-get install python3-cryptography; run with /usr/bin/python3)\n")
    sys.exit(1)

HEADER_LEN = 48
TAG_LEN = 16
MAGIC = b"SSHRBLOB"
MIN_CHUNK = 4096
MAX_CHUNK = 16777216
MAX_CHUNKS = 2**32 - 1
WRAPPED_LEN = 60
WRAP_AAD_PREFIX = b"safeshare-dek-v1:"
RING_MAX = 1024 * 1024
HEX_ID_RE = re.compile(r"^[0-9a-f]{32}$")
KEK_ID_RE = re.compile(r"^[0-9a-f]{16}$")
KEK_RE = re.compile(r"^[0-9a-f]{64}$")


class FormatError(Exception):
    """The bytes do not follow docs/format.md (refused before decrypting)."""


class AuthError(Exception):
    """A GCM tag did not verify: tampered, wrong key, wrong place."""


def expect(cond, msg):
    """A check that also runs under python -O (unlike assert)."""
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------- format

def parse_header(header):
    """Checks the 48-byte header; returns (chunk_size, prefix, file_id_hex)."""
    if len(header) != HEADER_LEN:
        raise FormatError("header is %d bytes, not 48" % len(header))
    if header[0:8] != MAGIC:
        raise FormatError("bad magic")
    if header[8] != 1:
        raise FormatError("unknown format version %d" % header[8])
    if header[9] != 1:
        raise FormatError("unknown algorithm %d" % header[9])
    if header[10:12] != b"\0\0" or header[39:48] != bytes(9):
        raise FormatError("reserved header bytes are not zero")
    chunk_size = struct.unpack(">I", header[12:16])[0]
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise FormatError("chunk size %d out of range" % chunk_size)
    return chunk_size, bytes(header[16:23]), header[23:39].hex()


def chunk_count(size, chunk_size):
    n = max(1, -(-size // chunk_size))
    if n > MAX_CHUNKS:
        raise FormatError("too many chunks")
    return n


def blob_size(size, chunk_size):
    return HEADER_LEN + size + TAG_LEN * chunk_count(size, chunk_size)


def chunk_offset(chunk_size, i):
    return HEADER_LEN + i * (chunk_size + TAG_LEN)


def chunk_len(size, chunk_size, i):
    """Plaintext length of chunk i."""
    n = chunk_count(size, chunk_size)
    return size - (n - 1) * chunk_size if i == n - 1 else chunk_size


def nonce(prefix, i, last):
    return prefix + struct.pack(">I", i) + (b"\x01" if last else b"\x00")


def size_from_blob_length(length, chunk_size):
    """'Without the size': walk the blob."""
    body = length - HEADER_LEN
    if body <= 0:
        raise FormatError("blob has no chunk")
    n = -(-body // (chunk_size + TAG_LEN))
    if body - (n - 1) * (chunk_size + TAG_LEN) < TAG_LEN:
        raise FormatError("last chunk shorter than a tag")
    return body - TAG_LEN * n


def open_chunk(dek, header, prefix, i, last, stored):
    try:
        return AESGCM(dek).decrypt(nonce(prefix, i, last), bytes(stored), bytes(header))
    except InvalidTag:
        raise AuthError("chunk %d does not authenticate" % i) from None


def decrypt_blob(dek, blob, size=None, file_id=None):
    """The whole plaintext. size from metadata, or None to walk the blob."""
    header = bytes(blob[:HEADER_LEN])
    chunk_size, prefix, hdr_file_id = parse_header(header)
    if file_id is not None and hdr_file_id != file_id:
        raise FormatError("header names file %s, not %s" % (hdr_file_id, file_id))
    if size is None:
        size = size_from_blob_length(len(blob), chunk_size)
    if len(blob) != blob_size(size, chunk_size):
        raise FormatError("blob is %d bytes, %d expected for size %d"
                          % (len(blob), blob_size(size, chunk_size), size))
    n = chunk_count(size, chunk_size)
    out = bytearray()
    for i in range(n):
        off = chunk_offset(chunk_size, i)
        ln = chunk_len(size, chunk_size, i)
        out += open_chunk(dek, header, prefix, i, i == n - 1, blob[off:off + ln + TAG_LEN])
    return bytes(out)


def decrypt_range(dek, read_at, size, a, z):
    """Plaintext bytes a..z (inclusive); read_at(offset, length) -> bytes.
    Decrypts only the chunks that hold the range."""
    header = read_at(0, HEADER_LEN)
    chunk_size, prefix, _ = parse_header(header)
    if not 0 <= a <= z < size:
        raise FormatError("range %d-%d outside a %d-byte file" % (a, z, size))
    n = chunk_count(size, chunk_size)
    first, last_needed = a // chunk_size, z // chunk_size
    out = bytearray()
    for i in range(first, last_needed + 1):
        ln = chunk_len(size, chunk_size, i)
        stored = read_at(chunk_offset(chunk_size, i), ln + TAG_LEN)
        if len(stored) != ln + TAG_LEN:
            raise FormatError("blob too short at chunk %d" % i)
        pt = open_chunk(dek, header, prefix, i, i == n - 1, stored)
        lo = a % chunk_size if i == first else 0
        hi = z % chunk_size if i == last_needed else ln - 1
        out += pt[lo:hi + 1]
    return bytes(out)


# ---------------------------------------------------------------- keys

def parse_ring(text, env=False):
    """KEK ring text -> list of (kek_id, key), oldest first (last = current).
    env: the SAFESHARE_KEK_RING form (';'-separated, blanks around ignored)."""
    if len(text) > RING_MAX:
        raise FormatError("ring larger than 1 MiB")
    if env:
        lines = [e.strip(b" \t\r\n") for e in text.split(b";")]
    else:
        lines = text.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the final LF
    ring = []
    for no, line in enumerate(lines, 1):
        if line == b"" or (not env and line.startswith(b"#")):
            continue
        try:
            s = line.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("ring line %d: not ASCII" % no) from None
        parts = s.split(" ")
        if len(s) != 81 or len(parts) != 2 or not KEK_ID_RE.match(parts[0]) \
                or not KEK_RE.match(parts[1]):
            raise FormatError("ring line %d: expected '<16 hex id> <64 hex key>'" % no)
        if any(kid == parts[0] for kid, _ in ring):
            raise FormatError("ring line %d: duplicate KEK id" % no)
        ring.append((parts[0], bytes.fromhex(parts[1])))
    if not ring:
        raise FormatError("ring holds no KEK")
    return ring


def wrap_aad(file_id):
    if not HEX_ID_RE.match(file_id):
        raise FormatError("file id must be 32 lowercase hex")
    return WRAP_AAD_PREFIX + file_id.encode("ascii")


def unwrap_dek(kek, file_id, wrapped):
    if len(wrapped) != WRAPPED_LEN:
        raise FormatError("wrapped DEK is %d bytes, not 60" % len(wrapped))
    try:
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], wrap_aad(file_id))
    except InvalidTag:
        raise AuthError("wrapped DEK does not authenticate") from None


def unwrap_with_ring(ring, file_id, wrapped, kek_id=None):
    """With kek_id (as metadata stores it) only that KEK; without, each."""
    keks = [(i, k) for i, k in ring if kek_id is None or i == kek_id]
    if not keks:
        raise FormatError("KEK %s is not in the ring" % kek_id)
    for _, kek in keks:
        try:
            return unwrap_dek(kek, file_id, wrapped)
        except AuthError:
            continue
    raise AuthError("no KEK of the ring unwraps this DEK for file %s" % file_id)


# ---------------------------------------------------------------- vectors

def hexval(v):
    return bytes.fromhex(v.replace(" ", ""))


def plaintext_from_spec(spec):
    """'"text"', 'N bytes (byte k = k mod M)', joined with ' ‖ '."""
    out = bytearray()
    for part in spec.split("‖"):
        part = part.strip()
        m = re.fullmatch(r'"(.*)"', part)
        if m:
            out += m.group(1).encode("ascii")
            continue
        m = re.fullmatch(r"(\d+) bytes \(byte k = k mod (\d+)\)", part)
        if m:
            out += bytes(k % int(m.group(2)) for k in range(int(m.group(1))))
            continue
        raise ValueError("unknown plaintext spec %r" % part)
    return bytes(out)


def read_vectors(doc_text):
    """The `name = value` code blocks of the 'Test vectors' section."""
    sec = doc_text.split("\n## Test vectors", 1)
    if len(sec) != 2:
        raise ValueError("no '## Test vectors' section")
    blocks = re.findall(r"```\n(.*?)```", sec[1], re.S)
    vectors = []
    for block in blocks:
        v = {}
        for line in block.splitlines():
            if not line.strip() or line.startswith("#"):
                if line.startswith("#") and "title" not in v:
                    v["title"] = line.lstrip("# ").strip()
                continue
            m = re.fullmatch(r"([\w.]+)\s*=\s*(.+?)\s*", line)
            if not m:
                raise ValueError("bad vector line %r" % line)
            v[m.group(1)] = m.group(2)
        vectors.append(v)
    return vectors


def seal_blob(dek, header, pt):
    """Encrypts per docs/format.md (only to compare with the vectors)."""
    chunk_size, prefix, _ = parse_header(header)
    n = chunk_count(len(pt), chunk_size)
    chunks = []
    for i in range(n):
        piece = pt[i * chunk_size:(i + 1) * chunk_size]
        chunks.append(AESGCM(dek).encrypt(nonce(prefix, i, i == n - 1), piece, header))
    return header + b"".join(chunks), chunks


def check_stream_vector(v):
    """Returns the number of values compared; raises on any mismatch."""
    dek, header = hexval(v["dek"]), hexval(v["header"])
    pt = plaintext_from_spec(v["plaintext"])
    blob, chunks = seal_blob(dek, header, pt)
    chunk_size, prefix, _ = parse_header(header)
    n, checked = len(chunks), 0

    def same(name, got, want):
        nonlocal checked
        if got != want:
            raise AssertionError("%s: %s: got %s, doc says %s"
                                 % (v.get("title"), name, got, want))
        checked += 1

    for key, val in v.items():
        m = re.fullmatch(r"(nonce|chunk)\.(\d+)(?:\.(\w+))?", key)
        if m:
            i = int(m.group(2))
            if m.group(1) == "nonce":
                same(key, nonce(prefix, i, i == n - 1).hex(), hexval(val).hex())
            elif m.group(3) is None:
                same(key, chunks[i].hex(), hexval(val).hex())
            elif m.group(3) == "tag":
                same(key, chunks[i][-TAG_LEN:].hex(), hexval(val).hex())
            elif m.group(3) == "head":
                same(key, chunks[i][:16].hex(), hexval(val).hex())
            elif m.group(3) == "sha256":
                same(key, hashlib.sha256(chunks[i]).hexdigest(), val)
            elif m.group(3) == "offset":
                same(key, chunk_offset(chunk_size, i), int(val))
                same(key + " (in blob)", blob[int(val):int(val) + len(chunks[i])], chunks[i])
            else:
                raise ValueError("unknown vector key " + key)
        elif key == "blob":
            same(key, blob.hex(), hexval(val).hex())
        elif key == "blob.len":
            same(key, len(blob), int(val))
            same(key + " (formula)", blob_size(len(pt), chunk_size), int(val))
        elif key == "blob.sha256":
            same(key, hashlib.sha256(blob).hexdigest(), val)
        elif key == "plaintext.sha256":
            same(key, hashlib.sha256(pt).hexdigest(), val)
        elif key == "range":
            a, z = (int(x) for x in val.split("-"))
            got = decrypt_range(dek, lambda off, ln: blob[off:off + ln], len(pt), a, z)
            same(key, got.hex(), hexval(v["range.plaintext"]).hex())
            same(key + " (slice)", got, pt[a:z + 1])
        elif key not in ("title", "dek", "header", "plaintext", "range.plaintext"):
            raise ValueError("unknown vector key " + key)
    # And the other direction: the reader gives the plaintext back, with
    # the size and by walking the blob.
    same("decrypt", decrypt_blob(dek, blob, len(pt)), pt)
    same("decrypt (walk)", decrypt_blob(dek, blob), pt)
    return checked


def check_wrap_vector(v, blob_vector):
    kek, dek = hexval(v["kek"]), hexval(v["dek"])
    file_id, kek_id = v["file_id"], v["kek_id"]
    aad = v["wrap.aad"].strip('"').encode("ascii")
    expect(aad == wrap_aad(file_id), "wrap.aad differs from the format's rule")
    wn = hexval(v["wrap.nonce"])
    wrapped = wn + AESGCM(kek).encrypt(wn, dek, aad)
    expect(wrapped == hexval(v["wrapped_dek"]), "wrapped_dek: got %s" % wrapped.hex())
    lines = [v[k].strip('"') for k in sorted(k for k in v if k.startswith("ring.line."))]
    ring = parse_ring(("# vector ring\n\n" + "\n".join(lines) + "\n").encode("ascii"))
    expect(ring[-1] == (kek_id, kek), "the vector's KEK is not the ring's current one")
    expect(unwrap_with_ring(ring, file_id, wrapped, kek_id) == dek, "unwrap by KEK id")
    expect(unwrap_with_ring(ring, file_id, wrapped) == dek, "unwrap trying each KEK")
    env = (" " + " ;\n".join(lines) + ";").encode("ascii")
    expect(parse_ring(env, env=True) == ring, "SAFESHARE_KEK_RING form of the ring")
    for bad_ring in (lines[1].upper(), lines[1] + " ", " " + lines[1], lines[1][:-1]):
        try:
            parse_ring((bad_ring + "\n").encode("ascii"))
            raise AssertionError("ring line %r accepted" % bad_ring)
        except FormatError:
            pass
    # The AAD binds the file: another file id fails; so does a flipped bit.
    other = "f" + file_id[1:]
    for bad_id, bad in ((other, wrapped), (file_id, wrapped[:59] + bytes([wrapped[59] ^ 1]))):
        try:
            unwrap_with_ring(ring, bad_id, bad)
            raise AssertionError("a bad wrapped DEK unwrapped")
        except AuthError:
            pass
    # Whole chain: ring + wrapped DEK + file id + vector 4's blob.
    blob, _ = seal_blob(hexval(blob_vector["dek"]), hexval(blob_vector["header"]),
                        plaintext_from_spec(blob_vector["plaintext"]))
    pt = decrypt_blob(unwrap_with_ring(ring, file_id, wrapped, kek_id), blob,
                      file_id=file_id)
    expect(pt == plaintext_from_spec(blob_vector["plaintext"]), "ring + wrapped DEK + blob")
    return 6


def run_vectors(doc):
    with open(doc, encoding="utf-8") as f:
        vectors = read_vectors(f.read())
    stream = [v for v in vectors if "header" in v]
    wraps = [v for v in vectors if "wrapped_dek" in v]
    if len(stream) < 5 or len(wraps) < 1:
        raise AssertionError("expected >= 5 stream and 1 wrap vectors in %s, found %d, %d"
                             % (doc, len(stream), len(wraps)))
    total = 0
    for v in stream:
        total += check_stream_vector(v)
    for w in wraps:
        # the blob vector whose file id the wrapped DEK is for
        match = [v for v in stream if parse_header(hexval(v["header"]))[2] == w["file_id"]
                 and hexval(v["dek"]) == hexval(w["dek"]) and v["plaintext"] != '""']
        expect(match, "no blob vector for wrap vector file %s" % w["file_id"])
        total += check_wrap_vector(w, match[0])
    print("format vectors: %d stream + %d wrap vectors, %d values match docs/format.md"
          % (len(stream), len(wraps), total))


# ---------------------------------------------------------------- check

def run_decrypt_cli(args):
    """This tool's own `decrypt` command, as an operator would run it."""
    cmd = [sys.executable, os.path.abspath(__file__), "decrypt"] + args
    return subprocess.run(cmd, capture_output=True)


def run_check(doc, helper):
    run_vectors(doc)
    cases = [(0, 4096), (1, 4096), (4095, 4096), (4096, 4096), (4097, 4096),
             (3 * 4096 + 7, 4096), (5 * 4096, 4096), (1048576 + 1, 1048576),
             (100000, 65536)]
    with tempfile.TemporaryDirectory(prefix="safeshare-format-") as tmp:
        for size, cs in cases:
            d = os.path.join(tmp, "%d-%d" % (size, cs))
            os.mkdir(d)
            r = subprocess.run([helper, d, str(size), str(cs)], capture_output=True)
            if r.returncode != 0:
                raise AssertionError("format_seal %d %d failed: %s"
                                     % (size, cs, r.stderr.decode(errors="replace")))
            with open(os.path.join(d, "meta"), encoding="ascii") as f:
                meta = dict(l.split("=", 1) for l in f.read().split())
            ring_path = os.path.join(d, "kek.ring")
            with open(os.path.join(d, "plain"), "rb") as f:
                plain = f.read()
            with open(os.path.join(d, "blob"), "rb") as f:
                blob = f.read()
            expect(len(plain) == size == int(meta["size"]), "format_seal wrote another size")
            with open(ring_path, "rb") as f:
                ring = parse_ring(f.read())
            expect(len(ring) == 2 and ring[-1][0] == meta["kek_id"], "ring/meta mismatch")
            base = ["--ring", ring_path, "--wrapped-dek", meta["wrapped_dek"],
                    "--file-id", meta["file_id"], "--blob", os.path.join(d, "blob")]
            # With the size and KEK id from metadata, and without (walk, try KEKs).
            for extra in (["--size", meta["size"], "--kek-id", meta["kek_id"]], []):
                out = os.path.join(d, "out-%d" % len(extra))
                r = run_decrypt_cli(base + extra + ["--out", out])
                if r.returncode != 0:
                    raise AssertionError("decrypt %d/%d %s failed: %s" % (
                        size, cs, extra, r.stderr.decode(errors="replace")))
                with open(out, "rb") as f:
                    if f.read() != plain:
                        raise AssertionError("decrypt %d/%d: plaintext differs" % (size, cs))
            if size > 10:
                a, z = size // 3, size - 2
                r = run_decrypt_cli(base + ["--size", meta["size"], "--range", "%d-%d" % (a, z)])
                expect(r.returncode == 0 and r.stdout == plain[a:z + 1], "range %d-%d" % (a, z))
            # This decryptor is not a yes-man: tampered inputs are refused.
            dek = unwrap_with_ring(ring, meta["file_id"], bytes.fromhex(meta["wrapped_dek"]),
                                   meta["kek_id"])
            for pos in (20, 30, 40, HEADER_LEN, len(blob) // 2, len(blob) - 1):
                bad = bytearray(blob)
                bad[pos] ^= 0x04
                try:
                    decrypt_blob(dek, bytes(bad), size, meta["file_id"])
                    raise AssertionError("flipped byte %d of %d/%d accepted" % (pos, size, cs))
                except (AuthError, FormatError):
                    pass
            # The ring from SAFESHARE_KEK_RING instead of the file.
            with open(ring_path, encoding="ascii") as f:
                env_ring = ";".join(l for l in f.read().splitlines() if l and l[0] != "#")
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "decrypt"]
                               + base[2:], capture_output=True,
                               env=dict(os.environ, SAFESHARE_KEK_RING=env_ring))
            expect(r.returncode == 0 and r.stdout == plain, "decrypt with SAFESHARE_KEK_RING")
            badfile = os.path.join(d, "bad-blob")
            with open(badfile, "wb") as f:
                f.write(blob[:-1] + bytes([blob[-1] ^ 0x80]))
            r = run_decrypt_cli(base[:-1] + [badfile])
            expect(r.returncode == 1 and b"authentication failed" in r.stderr,
                   "tampered blob: rc %d, %r" % (r.returncode, r.stderr))
            r = run_decrypt_cli(base[:2] + ["--wrapped-dek", meta["wrapped_dek"], "--file-id",
                                            "0" * 32, "--blob", os.path.join(d, "blob")])
            expect(r.returncode == 1, "another file id unwrapped the DEK")
    print("format independent: %d blobs sealed by the C code decrypted and compared, "
          "tampered copies refused" % len(cases))


# ---------------------------------------------------------------- main

def cmd_decrypt(a):
    if a.ring:
        with open(a.ring, "rb") as f:
            ring = parse_ring(f.read())
    else:
        value = os.environ.get("SAFESHARE_KEK_RING", "")
        if not value:
            raise FormatError("no --ring and SAFESHARE_KEK_RING is not set")
        ring = parse_ring(value.encode("ascii", "replace"), env=True)
    file_id = a.file_id
    wrapped = bytes.fromhex(a.wrapped_dek)
    dek = unwrap_with_ring(ring, file_id, wrapped, a.kek_id)
    with open(a.blob, "rb") as f:
        blob = f.read()
    if a.range:
        lo, hi = (int(x) for x in a.range.split("-"))
        chunk_size, _, hdr_file_id = parse_header(blob[:HEADER_LEN])
        if hdr_file_id != file_id:
            raise FormatError("header names file %s, not %s" % (hdr_file_id, file_id))
        size = a.size if a.size is not None else size_from_blob_length(len(blob), chunk_size)
        if len(blob) != blob_size(size, chunk_size):
            raise FormatError("blob length does not match the size")
        pt = decrypt_range(dek, lambda off, ln: blob[off:off + ln], size, lo, hi)
    else:
        pt = decrypt_blob(dek, blob, a.size, file_id)
    if a.out:
        # 0600, and never a partial file: everything authenticated above.
        fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pt)
    else:
        sys.stdout.buffer.write(pt)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_doc = os.path.join(here, "..", "..", "docs", "format.md")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decrypt", help="decrypt a blob")
    d.add_argument("--ring", help="KEK ring file (kek.ring); default: the "
                   "SAFESHARE_KEK_RING environment variable")
    d.add_argument("--wrapped-dek", required=True, help="wrapped DEK, 120 hex")
    d.add_argument("--file-id", required=True, help="file id, 32 lowercase hex")
    d.add_argument("--blob", required=True, help="the blob file")
    d.add_argument("--kek-id", help="KEK id from metadata (default: try each KEK)")
    d.add_argument("--size", type=int, help="plaintext size (default: walk the blob)")
    d.add_argument("--range", help="A-Z: only plaintext bytes A..Z (inclusive)")
    d.add_argument("--out", help="write here (created 0600, must not exist)")
    v = sub.add_parser("vectors", help="check docs/format.md's test vectors")
    v.add_argument("--doc", default=default_doc)
    c = sub.add_parser("check", help="vectors + blobs sealed by the C code")
    c.add_argument("--doc", default=default_doc)
    c.add_argument("--seal-helper", required=True, help="path to format_seal")
    a = p.parse_args()
    try:
        if a.cmd == "decrypt":
            cmd_decrypt(a)
        elif a.cmd == "vectors":
            run_vectors(a.doc)
        else:
            run_check(a.doc, a.seal_helper)
    except AuthError as e:
        sys.stderr.write("format_decrypt: authentication failed: %s\n" % e)
        return 1
    except (FormatError, ValueError, OSError) as e:
        sys.stderr.write("format_decrypt: %s\n" % e)
        return 1
    except AssertionError as e:
        sys.stderr.write("format_decrypt: FAILED: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
