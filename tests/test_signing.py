"""Signed datasets: keygen, sign, require_signature= / --verify-key.

The tamper tests change one byte at a time, systematically: in the header
(every field), in the section table, in the header page's padding, and at
the first, middle and last byte (and a few random ones) of every section and
of the padding between sections; each changed file must be refused before
any lookup is answered.  A forger who also fixes up the xxh3 checksums is
refused too (the signature covers a SHA-256 of every byte).
"""

from __future__ import annotations

import os
import pickle
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

import hashlookup
from hashlookup.store import format as _format
from importer_data import make_table, write_hashdeep, write_text

PY = sys.executable


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    good = hashlookup.generate_signing_key(d / "good")
    other = hashlookup.generate_signing_key(d / "other")
    return good, other


def _build(directory, seed=1, n=600):
    """A dataset with md5, sha1 and sha256 tables, sizes and labels."""
    table = make_table(n, seed)
    write_hashdeep(
        directory / "a.hashdeep", table, ("size", "md5", "sha1", "sha256", "filename")
    )
    write_text(directory / "b.txt", make_table(n // 2, seed + 100), "md5")
    path = directory / "d.hlds"
    hashlookup.build_dataset(
        {"police": str(directory / "a.hashdeep"), "hotline": str(directory / "b.txt")},
        path,
    )
    return path, table


@pytest.fixture
def signed(tmp_path, keys):
    path, table = _build(tmp_path)
    hashlookup.sign_dataset(path, keys[0].private_key)
    return path, table


def _replace_bytes(path, data: bytes) -> None:
    tmp = str(path) + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _positions(data: bytes) -> list[tuple[str, int]]:
    """Where to change a byte: every header field, section table entries,
    padding, and several positions in every section."""
    header = _format.read_header(data, len(data), "x")
    rng = np.random.default_rng(99)
    pos: list[tuple[str, int]] = []
    fields = [
        "magic",
        "version",
        "endian",
        "header_size",
        "count",
        "created",
        "file_size",
        "flags",
        "reserved",
        "checksum",
    ]
    offsets = [0, 8, 12, 16, 20, 24, 32, 40, 48, 56]
    pos += [(f"header {f}", o) for f, o in zip(fields, offsets)]
    pos += [("header magic last", 7), ("header checksum last", 63)]
    for i in range(len(header.sections)):
        base = _format.HEADER.size + i * _format.SECTION.size
        pos += [
            (f"table entry {i} kind", base),
            (f"table entry {i} offset", base + 17),
            (f"table entry {i} length", base + 24),
            (f"table entry {i} checksum", base + 32),
            (f"table entry {i} param", base + 40),
        ]
    pos += [("header page padding", header.header_size), ("header page padding", 4095)]
    spans = sorted(
        (s.offset, s.length, i, s.name)
        for i, s in enumerate(header.sections)
        if s.length
    )
    for off, length, i, name in spans:
        where = f"section {i} ({name})"
        picks = {off, off + length // 2, off + length - 1}
        picks |= {off + int(x) for x in rng.integers(0, length, 2)}
        pos += [(where, p) for p in sorted(picks)]
        end = off + length
        if end % _format.ALIGN and end < len(data):
            pos.append((f"padding after {where}", end))
    return pos


def test_signed_dataset_opens_with_every_key_form(signed, keys):
    path, table = signed
    good = keys[0]
    pem = Path(good.public_key).read_bytes()
    from cryptography.hazmat.primitives import serialization as s

    obj = s.load_pem_public_key(pem)
    raw = obj.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    ssh = obj.public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
    md5 = table.hex("md5")
    for key in (good.public_key, str(good.public_key), pem, raw, ssh, obj):
        with hashlookup.open_dataset(path, require_signature=key) as ds:
            ds.verify()
            hits = [ds.lookup(h) for h in md5[:50] if h]
            assert hits and all(m is not None for m in hits)
            assert ds.lookup("00" * 16) is None


def test_keygen_modes_and_no_overwrite(tmp_path):
    pair = hashlookup.generate_signing_key(tmp_path / "k")
    assert stat.S_IMODE(os.stat(pair.private_key).st_mode) == 0o600
    assert pair.public_key == str(tmp_path / "k") + ".pub"
    assert len(pair.key_id) == 16
    before = Path(pair.private_key).read_bytes()
    with pytest.raises(FileExistsError):
        hashlookup.generate_signing_key(tmp_path / "k")
    assert Path(pair.private_key).read_bytes() == before


def test_every_changed_byte_is_refused(signed, keys):
    path, _ = signed
    original = path.read_bytes()
    positions = _positions(original)
    assert len(positions) >= 150
    kinds: dict[str, int] = {}
    for where, p in positions:
        for flip in (0x01, 0x80):
            data = bytearray(original)
            data[p] ^= flip
            _replace_bytes(path, bytes(data))
            with pytest.raises(hashlookup.IndexFormatError) as e:
                hashlookup.open_dataset(path, require_signature=keys[0].public_key)
            kind = type(e.value).__name__
            kinds[kind] = kinds.get(kind, 0) + 1
            assert str(path) in str(e.value), (where, p, e.value)
    # The header checksum refuses header edits before the signature is read;
    # everything else is the signature's job.
    assert kinds.get("SignatureError", 0) > len(positions)
    _replace_bytes(path, original)
    with hashlookup.open_dataset(path, require_signature=keys[0].public_key):
        pass


def test_changed_byte_of_a_signed_index_is_refused(tmp_path, keys):
    k = np.random.default_rng(3).integers(0, 256, (5000, 20), dtype=np.uint8)
    path = tmp_path / "k.hlx"
    hashlookup.build_index(k, path)
    hashlookup.sign_dataset(path, keys[0].private_key)
    with hashlookup.open_index(path, require_signature=keys[0].public_key) as index:
        assert index.contains_many(k).all()
    original = path.read_bytes()
    for _where, p in _positions(original):
        data = bytearray(original)
        data[p] ^= 0x10
        _replace_bytes(path, bytes(data))
        with pytest.raises(hashlookup.IndexFormatError):
            hashlookup.open_index(path, require_signature=keys[0].public_key)


def test_forged_checksums_are_refused(signed, keys):
    """Change a record (its file size) and fix up the section's xxh3 checksum
    and the header checksum: the file passes verify() but not the signature."""
    path, _table = signed
    data = bytearray(path.read_bytes())
    header = _format.read_header(bytes(data), len(data), "x")
    i, s = next(
        (i, s) for i, s in enumerate(header.sections) if s.kind == _format.KIND_RECORDS
    )
    struct.pack_into("<q", data, s.offset + 16, 123456)
    new = xxhash.xxh3_64_intdigest(bytes(data[s.offset : s.offset + s.length]))
    entry = _format.HEADER.size + i * _format.SECTION.size
    struct.pack_into("<Q", data, entry + 32, new)
    struct.pack_into(
        "<Q",
        data,
        _format.HEADER_CHECKSUM_OFFSET,
        _format.header_checksum(data[: header.header_size]),
    )
    _replace_bytes(path, bytes(data))
    with hashlookup.open_dataset(path) as ds:  # unsigned use: looks fine
        ds.verify()
    with pytest.raises(hashlookup.SignatureError, match="another version"):
        hashlookup.open_dataset(path, require_signature=keys[0].public_key)
    # ...and with the signature file's header checksum fixed up as well.
    sig_path = str(path) + ".sig"
    text = (
        Path(sig_path)
        .read_text()
        .replace(
            f"header-xxh3 {header.checksum:016x}",
            f"header-xxh3 {struct.unpack_from('<Q', data, 56)[0]:016x}",
        )
    )
    Path(sig_path).write_text(text)
    with pytest.raises(hashlookup.SignatureError, match="signature check failed"):
        hashlookup.open_dataset(path, require_signature=keys[0].public_key)


def test_wrong_key_missing_and_tampered_signature(signed, keys):
    path, _ = signed
    good, other = keys
    with pytest.raises(hashlookup.SignatureError, match="signed by key"):
        hashlookup.open_dataset(path, require_signature=other.public_key)
    with pytest.raises(hashlookup.SignatureError, match="signed by key"):
        hashlookup.open_dataset(
            path, require_signature=Path(other.public_key).read_bytes()
        )
    sig_path = str(path) + ".sig"
    sig = Path(sig_path).read_bytes()
    # Every byte of the signature file, changed one at a time.
    for p in range(len(sig)):
        bad = bytearray(sig)
        bad[p] = ord("0") if bad[p] != ord("0") else ord("1")
        with open(sig_path, "wb") as f:
            f.write(bad)
        with pytest.raises(hashlookup.SignatureError):
            hashlookup.open_dataset(path, require_signature=good.public_key)
    for bad in (
        b"",
        sig + b"\n",
        sig[:-1],
        sig + b"x",
        b"\xff" * 10,
        sig.replace(b"\n", b"\r\n"),
    ):
        with open(sig_path, "wb") as f:
            f.write(bad)
        with pytest.raises(hashlookup.SignatureError):
            hashlookup.open_dataset(path, require_signature=good.public_key)
    os.unlink(sig_path)
    with pytest.raises(hashlookup.SignatureError, match="not signed"):
        hashlookup.open_dataset(path, require_signature=good.public_key)
    # Without require_signature the file still opens (signing is opt-in).
    with hashlookup.open_dataset(path) as ds:
        assert len(ds)


def test_bad_keys_are_refused(signed, keys, tmp_path):
    path, _ = signed
    with pytest.raises(hashlookup.SignatureError, match="private key"):
        hashlookup.open_dataset(path, require_signature=keys[0].private_key)
    (tmp_path / "junk.pub").write_bytes(b"not a key")
    with pytest.raises(hashlookup.SignatureError, match="not a PEM"):
        hashlookup.open_dataset(path, require_signature=tmp_path / "junk.pub")
    with pytest.raises(TypeError):
        hashlookup.open_dataset(path, require_signature=42)
    with pytest.raises(FileNotFoundError):
        hashlookup.open_dataset(path, require_signature=tmp_path / "missing.pub")
    with pytest.raises(hashlookup.SignatureError, match="not an unencrypted PEM"):
        hashlookup.sign_dataset(path, keys[0].public_key)


def test_sign_refuses_a_corrupt_file(tmp_path, keys):
    path, _ = _build(tmp_path)
    data = bytearray(path.read_bytes())
    header = _format.read_header(bytes(data), len(data), "x")
    records = _format.find_sections(header, _format.KIND_RECORDS)[0]
    data[records.offset + 20] ^= 1  # a record's size: only checksums see it
    _replace_bytes(path, bytes(data))
    with pytest.raises(hashlookup.IndexFormatError, match="checksum mismatch"):
        hashlookup.sign_dataset(path, keys[0].private_key)
    assert not os.path.exists(str(path) + ".sig")


def test_reload_checks_every_generation(tmp_path, keys):
    good = keys[0]
    path, _table = _build(tmp_path, seed=5)
    hashlookup.sign_dataset(path, good.private_key)
    extra = tmp_path / "extra.txt"
    new_keys = make_table(50, 77)
    write_text(extra, new_keys, "md5")
    new_md5 = next(h for h in new_keys.hex("md5") if h)
    with hashlookup.open_dataset(path, require_signature=good.public_key) as ds:
        assert ds.generation == 1
        hashlookup.update_dataset(path, add={"extra": str(extra)})
        # Replaced, but the signature is still the old file's: refused, and
        # the verified generation keeps answering.
        with pytest.raises(hashlookup.SignatureError, match="another version"):
            ds.reload()
        with pytest.raises(hashlookup.SignatureError):  # not re-hashed, same error
            ds.reload()
        assert ds.generation == 1 and ds.lookup(new_md5) is None
        hashlookup.sign_dataset(path, good.private_key)
        assert ds.reload() is True
        assert ds.generation == 2 and ds.lookup(new_md5) is not None
        # A signed generation 3 with one byte changed after signing.
        hashlookup.update_dataset(path, remove=[str(extra)])
        hashlookup.sign_dataset(path, good.private_key)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 4
        _replace_bytes(path, bytes(data))
        with pytest.raises(hashlookup.SignatureError):
            ds.reload()
        assert ds.generation == 2


def test_auto_reload_keeps_the_verified_generation(tmp_path, keys):
    import time

    good = keys[0]
    path, _table = _build(tmp_path, seed=6)
    hashlookup.sign_dataset(path, good.private_key)
    extra = tmp_path / "extra.txt"
    write_text(extra, make_table(20, 78), "md5")
    with hashlookup.open_dataset(
        path, require_signature=good.public_key, auto_reload=True, reload_interval=0.01
    ) as ds:
        hashlookup.update_dataset(path, add={"extra": str(extra)})
        time.sleep(0.05)
        assert ds.lookup("00" * 16) is None  # no exception: keeps generation 1
        assert ds.generation == 1
        hashlookup.sign_dataset(path, good.private_key)
        time.sleep(0.05)
        ds.lookup("00" * 16)
        assert ds.generation == 2


def test_pickled_handles_check_the_signature_again(signed, keys):
    path, _ = signed
    ds = hashlookup.open_dataset(path, require_signature=keys[0].public_key)
    blob = pickle.dumps(ds)
    ds.close()
    with pickle.loads(blob) as again:
        assert len(again)
    os.unlink(str(path) + ".sig")
    with pytest.raises(hashlookup.SignatureError, match="not signed"):
        pickle.loads(blob)


# ---------------------------------------------------------------------------
# command line


def _cli(*args, cwd=None):
    return subprocess.run(
        [PY, "-m", "hashlookup", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_keygen_sign_and_verify_key(tmp_path):
    path, table = _build(tmp_path, seed=8)
    r = _cli("keygen", "-o", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    assert "key id:" in r.stdout
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    r = _cli("keygen", "-o", tmp_path / "k")
    assert r.returncode == 2 and "existing key" in r.stderr
    r = _cli("sign", path, "--key", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(str(path) + ".sig")
    pub = tmp_path / "k.pub"
    md5 = next(h for h in table.hex("md5") if h)
    for args, code in (
        (("verify", path), 0),
        (("info", path), 0),
        (("check", path, md5), 1),
        (("check", path, "0" * 32), 0),
    ):
        r = _cli(*args, "--verify-key", pub)
        assert r.returncode == code, (args, r.stderr)
    (tmp_path / "list.txt").write_text(md5 + "\n")
    r = _cli("match", path, tmp_path / "list.txt", "--verify-key", pub)
    assert r.returncode == 1 and md5 in r.stdout, r.stderr
    r = _cli("scan", path, tmp_path / "list.txt", "--verify-key", pub, "--quiet")
    assert r.returncode == 0, r.stderr
    # One byte changed: every command refuses, exit 2, clear message.
    data = bytearray(path.read_bytes())
    data[len(data) - 10] ^= 1
    _replace_bytes(path, bytes(data))
    for args in (
        ("verify", path),
        ("info", path),
        ("check", path, md5),
        ("match", path, tmp_path / "list.txt"),
        ("scan", path, tmp_path / "list.txt"),
    ):
        r = _cli(*args, "--verify-key", pub)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "signature" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stdout == "", r.stdout


def test_cli_rewrite_notes_the_stale_signature(tmp_path, keys):
    path, _table = _build(tmp_path, seed=9)
    extra = tmp_path / "extra.txt"
    write_text(extra, make_table(10, 79), "md5")
    r = _cli("update", path, "--add", f"x={extra}")
    assert r.returncode == 0 and "note" not in r.stderr, r.stderr
    hashlookup.sign_dataset(path, keys[0].private_key)
    r = _cli("update", path, "--add", f"y={extra}")
    assert r.returncode == 0, r.stderr
    assert "signs the previous version" in r.stderr and "hashlookup sign" in r.stderr
    r = _cli("verify", path, "--verify-key", keys[0].public_key)
    assert r.returncode == 2 and "another version" in r.stderr
