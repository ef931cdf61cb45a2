"""Offline verification of an audit packet (``zentra packet verify FILE [--pubkey PEM]``).

Checks, in order: the zip is readable and every member name is a plain relative path;
the members are exactly manifest.json, manifest.sig, SHA256SUMS, signing_key.pub.pem
and the manifest's ``files``; the Ed25519 signature over manifest.json's exact bytes
(with the given public key, or else the embedded one, which the verdict says); every
listed file's size and SHA-256; SHA256SUMS; the RFC 6962 Merkle root; the chain to the
previous version when it sits beside the file. A hostile file never raises: the verdict
is ``ok=False`` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from isal import isal_zlib

from zentra_pipelines.domain import evidence as ev
from zentra_pipelines.domain.packet_zip import LOCAL_HEADER, LOCAL_SIGNATURE

MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
MAX_META_BYTES = 16 * 1024 * 1024  # manifest.json, SHA256SUMS
MAX_PEM_BYTES = 64 * 1024
MAX_MEMBERS = 10_000
_CHUNK = 1024 * 1024
_VERSION_FILE_RE = re.compile(r"^v([1-9][0-9]{0,8})\.zip$")
_SUMS_LINE_RE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    manifest: dict | None = None

    def __bool__(self) -> bool:  # `if verify_packet(p):` reads naturally
        return self.ok


class _Reject(Exception):
    """Internal: a failed check, carrying the verdict's reason."""


def _fail(reason: str) -> _Reject:
    return _Reject(reason)


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    if info.file_size > cap:
        raise _fail(f"member {info.filename} is {info.file_size} bytes, over the {cap} cap")
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise _fail(f"member {info.filename} inflates past the {cap} byte cap")
    return data


def _stream_hashes(fh: BinaryIO, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, bytes, int]:
    """(sha256 hex, RFC 6962 leaf hash, size) of one member, read in chunks under the cap."""
    if info.file_size > MAX_MEMBER_BYTES:
        raise _fail(f"member {info.filename} is {info.file_size} bytes, over the size cap")
    plain = hashlib.sha256()
    leaf = hashlib.sha256(b"\x00")
    size = 0
    for chunk in _member_chunks(fh, zf, info):
        size += len(chunk)
        if size > MAX_MEMBER_BYTES:
            raise _fail(f"member {info.filename} inflates past the size cap")
        plain.update(chunk)
        leaf.update(chunk)
    return plain.hexdigest(), leaf.digest(), size


def _member_chunks(fh: BinaryIO, zf: zipfile.ZipFile, info: zipfile.ZipInfo, chunk: int = _CHUNK) -> Iterator[bytes]:
    """A member's bytes, at most ``chunk`` bytes read or inflated at a time.

    Deflated members (every member Zentra writes) are inflated by ISA-L straight from
    the file: zlib's inflate was ~60% of verifying a packet (the largest 1M packet:
    0.86 of 1.5 s). The checks are zipfile's: the local header's signature, name,
    method and encryption flag agree with the directory, and the CRC-32 at the end;
    besides, the deflate stream must end exactly at the member's compressed size and
    the size must be the directory's. Any other method goes through ``zipfile``.

    Once all input is fed, the inflater may still hold output (its last call stopped
    at ``chunk`` bytes): it is drained with empty input, as zipfile flushes it.
    """
    if info.compress_type != zipfile.ZIP_DEFLATED:
        with zf.open(info) as member:
            while block := member.read(chunk):
                yield block
        return
    fh.seek(info.header_offset)
    head = fh.read(LOCAL_HEADER.size)
    if len(head) != LOCAL_HEADER.size or head[:4] != LOCAL_SIGNATURE:
        raise _fail(f"member {info.filename} has no local header where the directory says")
    _, _, _, flags, method, *_, name_len, extra_len = LOCAL_HEADER.unpack(head)
    if fh.read(name_len) != info.filename.encode("ascii") or method != zipfile.ZIP_DEFLATED or flags & 0x1:
        raise _fail(f"member {info.filename}: local header and directory differ")
    fh.seek(extra_len, 1)
    inflater = isal_zlib.decompressobj(-15)
    left, crc, size, data = info.compress_size, 0, 0, b""
    while not inflater.eof:
        if not data and left:
            data = fh.read(min(chunk, left))
            if not data:
                raise _fail(f"member {info.filename} is truncated")
            left -= len(data)
        try:
            out = inflater.decompress(data, chunk)  # empty ``data``: drain what it holds
        except isal_zlib.error as exc:
            raise _fail(f"member {info.filename} does not inflate: {exc}") from None
        rest = inflater.unconsumed_tail
        if not out and len(rest) == len(data) and not inflater.eof:
            if data:
                raise _fail(f"member {info.filename} does not inflate")
            break  # every byte fed, nothing held back, and still no end of stream
        data = rest
        size += len(out)
        if size > info.file_size:
            raise _fail(f"member {info.filename} inflates past its recorded size")
        crc = isal_zlib.crc32(out, crc)
        yield out
    if not inflater.eof or left or data or inflater.unused_data:
        raise _fail(f"member {info.filename}: the deflate stream does not end with the member")
    if crc != info.CRC or size != info.file_size:
        raise _fail(f"member {info.filename} fails its CRC-32 or size")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _fail(f"manifest.json repeats the key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _fail(f"manifest.json holds the non-JSON number {name}")


def _parse_manifest(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("manifest.json is not UTF-8") from None
    try:
        manifest = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):
        raise _fail("manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise _fail("manifest.json is not a JSON object")
    return manifest


def _check_manifest_shape(m: dict) -> list[dict]:
    if m.get("packet_format") != ev.PACKET_FORMAT:
        raise _fail(f"packet_format is {m.get('packet_format')!r}, want {ev.PACKET_FORMAT!r}")
    if not ev.is_valid_tenant_id(m.get("tenant_id")):
        raise _fail("manifest tenant_id is not a valid identifier")
    if not ev.is_valid_period(m.get("period")):
        raise _fail("manifest period is not a YYYY-MM-DD day")
    version = m.get("version")
    if type(version) is not int or version < 1:
        raise _fail("manifest version is not an integer >= 1")
    sup = m.get("supersedes")
    if version == 1 and sup is not None:
        raise _fail("version 1 must not supersede anything")
    if version > 1 and not ev.is_hex_sha256(sup):
        raise _fail(f"version {version} lacks a valid supersedes hash")
    if not ev.is_hex_sha256(m.get("merkle_root")):
        raise _fail("manifest merkle_root is not a SHA-256 hex digest")
    merkle = m.get("merkle")
    if merkle is not None and merkle != ev.MERKLE_DESCRIPTION:
        raise _fail(f"unsupported merkle scheme {merkle!r}")
    if not ev.is_key_id(m.get("key_id")):
        raise _fail("manifest key_id is not 'ed25519:<sha256 hex>'")
    if m.get("key_kind") not in ev.KEY_KINDS:
        raise _fail("manifest key_kind is neither 'configured' nor 'development'")
    files = m.get("files")
    if not isinstance(files, list):
        raise _fail("manifest files is not a list")
    paths: list[str] = []
    for entry in files:
        if not isinstance(entry, dict):
            raise _fail("a manifest files entry is not an object")
        path = entry.get("path")
        if not ev.is_safe_member_name(path):
            raise _fail(f"manifest lists an unsafe path {path!r}")
        if path in ev.META_MEMBERS:
            raise _fail(f"manifest files must not list {path}")
        if not ev.is_hex_sha256(entry.get("sha256")):
            raise _fail(f"manifest sha256 of {path} is not a hex digest")
        size = entry.get("bytes")
        if type(size) is not int or size < 0:
            raise _fail(f"manifest bytes of {path} is not a non-negative integer")
        rows = entry.get("rows")
        if rows is not None and (type(rows) is not int or rows < 0):
            raise _fail(f"manifest rows of {path} is not null or a non-negative integer")
        paths.append(path)
    if len(set(paths)) != len(paths):
        raise _fail("manifest files lists a path twice")
    if paths != sorted(paths):
        raise _fail("manifest files are not in path order")
    _check_contract_members(m, {entry["path"]: entry for entry in files})
    return files


def _check_contract_members(m: dict, listed: dict[str, dict]) -> None:
    """What the contract says every packet holds is listed: the report, the public key,
    and for each table counted (``rows_<table>``) its Parquet and CSV with that many rows.
    Digests alone would pass a signed packet that simply leaves a table out."""
    for name in (ev.REPORT_NAME, ev.PUBKEY_NAME):
        if name not in listed:
            raise _fail(f"manifest files do not list {name}")
    for path, entry in listed.items():  # every table in both formats, the same rows
        stem, dot, ext = path.rpartition(".")
        if path.startswith("data/") and dot and ext in ("parquet", "csv"):
            twin = f"{stem}.{'csv' if ext == 'parquet' else 'parquet'}"
            if twin not in listed:
                raise _fail(f"manifest lists {path} but not {twin}")
            if listed[twin].get("rows") != entry.get("rows"):
                raise _fail(f"manifest lists {path} and {twin} with different row counts")
    counts = m.get("counts")
    if not isinstance(counts, dict):
        raise _fail("manifest counts is not an object")
    for key, rows in sorted(counts.items()):
        if not key.startswith("rows_"):
            continue
        for path in (f"data/{key[5:]}.parquet", f"data/{key[5:]}.csv"):
            if path not in listed:
                raise _fail(f"manifest counts {key} but files do not list {path}")
            if listed[path].get("rows") != rows:
                raise _fail(f"manifest counts {key} = {rows} but lists {path} with {listed[path].get('rows')} rows")


def _load_public_key(pem: bytes, what: str) -> tuple[Ed25519PublicKey, str]:
    try:
        key = serialization.load_pem_public_key(pem)
    except Exception:
        raise _fail(f"{what} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _fail(f"{what} is not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, ev.key_id_for_raw_public_key(raw)


def _parse_sums(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("SHA256SUMS is not UTF-8") from None
    if text and not text.endswith("\n"):
        raise _fail("SHA256SUMS does not end with a newline")
    out: dict[str, str] = {}
    # lines end in LF (CRLF tolerated), as `sha256sum -c` reads them; str.splitlines()
    # would also split on CR, VT, FF, NEL, U+2028..., which sha256sum does not
    for n, line in enumerate(text.split("\n")[:-1], start=1):
        m = _SUMS_LINE_RE.fullmatch(line.removesuffix("\r"))
        if m is None:
            raise _fail(f"SHA256SUMS line {n} is not '<sha256>  <path>'")
        digest, path = m.group(1), m.group(2)
        if path in out:
            raise _fail(f"SHA256SUMS lists {path} twice")
        out[path] = digest
    return out


def _manifest_sha256_of(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        try:
            info = zf.getinfo(ev.MANIFEST_NAME)
        except KeyError:
            raise _fail(f"{zip_path.name} has no manifest.json") from None
        return hashlib.sha256(_read_capped(zf, info, MAX_META_BYTES)).hexdigest()


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes


def _check_layout(fh: BinaryIO, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Every byte of the file is a member, the central directory or its end record.

    ``zipfile`` forgives a lot: bytes in front (it shifts every offset by them), bytes
    between or after members, a comment. Another reader does not: one streaming from
    the first byte (``jar x``) extracts a forged zip put in front of a genuine packet
    whose directory ``zipfile`` reads and verifies. A packet is written in one fixed
    layout, so anything outside it is refused.
    """
    if zf.comment:
        raise _fail("the zip carries a comment; a packet has none")
    offset = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != offset:
            raise _fail(f"member {info.filename}: bytes outside any member before it (offset {offset}, "
                        f"member at {info.header_offset})")
        fh.seek(offset)
        head = fh.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise _fail(f"member {info.filename}: no local header where the directory puts it")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        offset += 30 + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows the data, with or without its signature
            fh.seek(offset)
            offset += 16 if fh.read(4) == b"PK\x07\x08" else 12
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(size - _EOCD.size)
    end = fh.read(_EOCD.size)
    if len(end) != _EOCD.size or end[:4] != b"PK\x05\x06":
        raise _fail("the file does not end with the zip's end record (bytes after it?)")
    *_, dir_size, dir_offset, comment_len = _EOCD.unpack(end)
    if comment_len or dir_offset != offset or dir_offset + dir_size != size - _EOCD.size:
        raise _fail("bytes outside the members and the central directory")


def _verify(path: Path, pubkey_pem: bytes | None) -> Verdict:
    path = Path(path)
    if not path.is_file():
        raise _fail(f"{path} is not a file")
    if pubkey_pem is not None:
        given_key, given_id = _load_public_key(pubkey_pem, "the given public key")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, with the zip that shares it
    except OSError as exc:
        raise _fail(f"not a readable zip: {exc}") from None
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        fh.close()
        raise _fail(f"not a readable zip: {exc}") from None
    with fh, zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _fail(f"{len(infos)} members, over the {MAX_MEMBERS} cap")
        by_name: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if not ev.is_safe_member_name(name):
                raise _fail(f"unsafe member name {name!r}")
            if name in by_name:
                raise _fail(f"member {name} appears twice")
            if info.flag_bits & 0x1:
                raise _fail(f"member {name} is encrypted")
            mode = info.external_attr >> 16
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # a symlink would escape on unzip
                raise _fail(f"member {name} is not a regular file")
            if info.file_size > MAX_MEMBER_BYTES:
                raise _fail(f"member {name} is {info.file_size} bytes, over the size cap")
            total += info.file_size
            by_name[name] = info
        if total > MAX_TOTAL_BYTES:
            raise _fail("members add up past the total size cap")
        _check_layout(fh, zf, infos)
        for required in (ev.MANIFEST_NAME, ev.SIGNATURE_NAME, ev.SUMS_NAME, ev.PUBKEY_NAME):
            if required not in by_name:
                raise _fail(f"{required} is missing")

        manifest_raw = _read_capped(zf, by_name[ev.MANIFEST_NAME], MAX_META_BYTES)
        manifest = _parse_manifest(manifest_raw)
        files = _check_manifest_shape(manifest)

        expected = {ev.MANIFEST_NAME, ev.SIGNATURE_NAME, ev.SUMS_NAME, ev.PUBKEY_NAME}
        expected.update(f["path"] for f in files)
        present = set(by_name)
        if present != expected:
            parts = []
            if expected - present:
                parts.append("missing " + ", ".join(sorted(expected - present)))
            if present - expected:
                parts.append("unexpected " + ", ".join(sorted(present - expected)))
            raise _fail("member set differs from the manifest: " + "; ".join(parts))

        # -- signature
        signature = _read_capped(zf, by_name[ev.SIGNATURE_NAME], 1024)
        if len(signature) != 64:
            raise _fail(f"manifest.sig is {len(signature)} bytes, not a raw 64-byte signature")
        embedded_pem = _read_capped(zf, by_name[ev.PUBKEY_NAME], MAX_PEM_BYTES)
        embedded_key, embedded_id = _load_public_key(embedded_pem, "signing_key.pub.pem")
        if pubkey_pem is not None:
            key, key_id, source = given_key, given_id, "given key"
        else:
            key, key_id, source = embedded_key, embedded_id, "embedded key"
        try:
            key.verify(signature, manifest_raw)
        except InvalidSignature:
            raise _fail(f"signature does not verify with the {source} {key_id}") from None
        if embedded_id != key_id:
            raise _fail(
                f"signing_key.pub.pem ({embedded_id}) is not the given key ({key_id})"
            )
        if manifest["key_id"] != key_id:
            raise _fail(f"manifest key_id {manifest['key_id']} is not the signing key {key_id}")

        # -- every member's digest, files' sizes, Merkle leaves
        digests: dict[str, str] = {ev.MANIFEST_NAME: hashlib.sha256(manifest_raw).hexdigest()}
        leaves: list[bytes] = []
        for entry in files:
            p = entry["path"]
            digest, leaf, size = _stream_hashes(fh, zf, by_name[p])
            if size != entry["bytes"]:
                raise _fail(f"{p} is {size} bytes, manifest says {entry['bytes']}")
            if digest != entry["sha256"]:
                raise _fail(f"{p} does not match its sha256 in the manifest")
            digests[p] = digest
            leaves.append(leaf)
        if ev.PUBKEY_NAME not in digests:
            digests[ev.PUBKEY_NAME] = hashlib.sha256(embedded_pem).hexdigest()

        sums = _parse_sums(_read_capped(zf, by_name[ev.SUMS_NAME], MAX_META_BYTES))
        if set(sums) != set(digests):
            raise _fail(
                "SHA256SUMS does not cover exactly every member but manifest.sig and itself"
            )
        for p, digest in sums.items():
            if digests[p] != digest:
                raise _fail(f"SHA256SUMS line for {p} does not match the file")

        root = ev.merkle_root_from_leaf_hashes(leaves).hex()
        if root != manifest["merkle_root"]:
            raise _fail(f"merkle root recomputes to {root}, manifest says {manifest['merkle_root']}")

    # -- where it sits: file name, folder, chain
    version = manifest["version"]
    notes: list[str] = []
    m = _VERSION_FILE_RE.fullmatch(path.name)
    if m is not None:
        if int(m.group(1)) != version:
            raise _fail(f"file is named {path.name} but the manifest says version {version}")
        if ev.is_valid_period(path.parent.name):
            if path.parent.name != manifest["period"]:
                raise _fail(
                    f"file sits under {path.parent.name} but the manifest period is "
                    f"{manifest['period']}"
                )
            if path.parent.parent.parent.name == "packets" and (
                path.parent.parent.name != manifest["tenant_id"]
            ):
                raise _fail(
                    f"file sits under tenant {path.parent.parent.name} but the manifest "
                    f"tenant is {manifest['tenant_id']}"
                )
        if version > 1:
            prev = path.with_name(f"v{version - 1}.zip")
            if prev.is_file():
                try:
                    prev_sha = _manifest_sha256_of(prev)
                except _Reject:
                    raise
                except Exception as exc:
                    raise _fail(f"previous version {prev.name} is unreadable: {exc}") from None
                if prev_sha != manifest["supersedes"]:
                    raise _fail(
                        f"chain broken: supersedes {manifest['supersedes']} but "
                        f"{prev.name}'s manifest.json hashes to {prev_sha}"
                    )
                # this signed manifest commits to the previous manifest, which commits to
                # its files: the previous version's integrity (and its own chain) completes
                # the link, whichever key signed it
                previous = verify_packet(prev)
                if not previous.ok:
                    raise _fail(f"chain broken: {prev.name} does not verify: {previous.reason}")
                note = f"chain to {prev.name} checked, its files intact"
                prev_key = (previous.manifest or {}).get("key_id")
                if pubkey_pem is not None and prev_key != key_id:
                    note += f", but {prev.name} is signed by another key {prev_key}: verify it with that key"
                notes.append(note)
            else:
                notes.append(f"{prev.name} not beside it, chain not checked")
    elif version > 1:
        notes.append("chain not checked (file not named v<N>.zip)")

    if pubkey_pem is not None:
        signed_by = f"signed by given key {key_id} ({manifest['key_kind']})"
    else:
        # Anyone can re-sign a packet and embed their own key: without a trusted key the
        # verdict proves integrity, not who signed, and says so in the line itself.
        signed_by = (
            f"signed by embedded key {key_id} (key_kind {manifest['key_kind']}, as the packet states; "
            "integrity only: pass --pubkey with the trusted key to check who signed it)"
        )
    reason = (
        f"OK {manifest['tenant_id']} {manifest['period']} v{version}: "
        f"{len(files)} files intact, merkle root {manifest['merkle_root']}, {signed_by}"
    )
    if notes:
        reason += "; " + "; ".join(notes)
    return Verdict(True, reason, manifest)


def verify_packet(path: Path, pubkey_pem: bytes | None = None) -> Verdict:
    """Verify an audit packet. Never raises on a hostile or broken file."""
    try:
        return _verify(Path(path), pubkey_pem)
    except _Reject as exc:
        return Verdict(False, str(exc), None)
    except Exception as exc:  # a hostile file must not crash the verifier
        detail = str(exc).replace("\n", " ")[:300]
        return Verdict(False, f"unreadable packet: {type(exc).__name__}: {detail}", None)


def cli_main(argv: list[str] | None = None) -> int:
    """``zentra packet verify FILE [--pubkey PEM]``: one-line verdict on stdout.

    Exit 0 when intact and correctly signed, 1 when a check fails, 2 for bad usage
    (no such FILE, or a --pubkey file that cannot be read).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="zentra packet verify")
    parser.add_argument("file", type=Path)
    parser.add_argument("--pubkey", type=Path, default=None, help="PEM Ed25519 public key")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    pem = None
    if args.pubkey is not None:
        try:
            pem = args.pubkey.read_bytes()[: MAX_PEM_BYTES + 1]
        except OSError as exc:
            print(f"FAIL cannot read --pubkey {args.pubkey}: {exc.strerror}", file=sys.stderr)
            return 2
        try:  # a --pubkey that is no Ed25519 public key is bad input, not a failed packet
            _load_public_key(pem, f"--pubkey {args.pubkey}")
        except _Reject as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            return 2
    if not args.file.is_file():  # bad usage, not a packet that failed its checks
        print(f"FAIL {args.file}: {'not a file' if args.file.exists() else 'no such file'}")
        return 2
    verdict = verify_packet(args.file, pem)
    line = verdict.reason if verdict.ok else f"FAIL {args.file}: {verdict.reason}"
    print(line.replace("\n", " "))
    return 0 if verdict.ok else 1
