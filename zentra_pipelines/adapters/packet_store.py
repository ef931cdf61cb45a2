"""Write-once store of audit packets: ``<root>/packets/<tenant_id>/<YYYY-MM-DD>/v<N>.zip``.

* Ids are validated before any path is built, and the resolved folder must sit inside
  ``<root>/packets`` (a symlinked tenant folder cannot lead elsewhere).
* A packet is refused if any table holds another tenant's row.
* Idempotent: when the latest version holds the same content (Merkle root and every
  manifest field but ``version``/``supersedes``) nothing is written. Otherwise
  ``v<N+1>`` is written with ``supersedes`` = SHA-256 of ``v<N>``'s manifest.json.
* A version is never rewritten: the zip is written to a temporary name in the same
  folder, fsynced, then hard-linked to ``v<N>.zip`` (which fails if that name exists,
  unlike ``rename``), and the folder is fsynced. A concurrent sealer that loses the
  race re-reads the folder and tries again.
* Before it is published, the new zip is checked by the same verifier auditors use.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from zentra_pipelines.domain import evidence as ev
from zentra_pipelines.domain.evidence import PacketInput
from zentra_pipelines.packet_verify import verify_packet

PACKETS_DIR = "packets"
_VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})\.zip$")
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_RACE_RETRIES = 8


class PacketStoreError(Exception):
    """The store cannot seal or read a packet (bad id, path escape, damaged version)."""


class SignerLike(Protocol):
    key_id: str
    key_kind: str
    public_pem: bytes

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class SealResult:
    path: Path
    version: int
    created: bool
    merkle_root: str
    manifest_sha256: str
    key_id: str


def _packets_root(root: Path) -> Path:
    return (Path(root) / PACKETS_DIR).resolve()


def packet_dir(root: Path, tenant_id: str, period: str) -> Path:
    """The tenant-day folder, after validating both ids and checking containment."""
    if not ev.is_valid_tenant_id(tenant_id):
        raise PacketStoreError(f"invalid tenant_id {tenant_id!r}")
    if not ev.is_valid_period(period):
        raise PacketStoreError(f"invalid period {period!r}: want a real YYYY-MM-DD day")
    base = _packets_root(root)
    target = (base / tenant_id / period).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PacketStoreError(f"packet folder for {tenant_id!r} escapes {base}")
    return target


def _versions_in(day_dir: Path) -> list[int]:
    try:
        names = os.listdir(day_dir)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        m = _VERSION_RE.fullmatch(name)
        if m is not None and (day_dir / name).is_file():
            out.append(int(m.group(1)))
    return sorted(out)


def _read_manifest_bytes(zip_path: Path) -> bytes:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(ev.MANIFEST_NAME)
            if info.file_size > _MAX_MANIFEST_BYTES:
                raise PacketStoreError(f"{zip_path}: manifest.json is implausibly large")
            with zf.open(info) as fh:
                return fh.read(_MAX_MANIFEST_BYTES + 1)
    except PacketStoreError:
        raise
    except (KeyError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PacketStoreError(f"sealed packet {zip_path} is unreadable: {exc}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path, stop: Path) -> None:
    """mkdir -p that fsyncs each parent it adds an entry to, up to ``stop``."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p == stop or p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        _fsync_dir(d.parent)


STAGING_DIR = ".packet_staging"


def staging_dir(root: Path) -> Path:
    """Where packets are written before they get their name: beside packets/ (same file
    system, so the final link is atomic), never inside it, so a crash mid-write leaves
    nothing an auditor or `packet list` could mistake for evidence."""
    path = Path(root) / STAGING_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_staging(root: Path) -> int:
    """Remove temporary packets orphaned by a killed run. Call once before sealing starts."""
    removed = 0
    for stale in staging_dir(root).glob("*.zip.tmp"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


def _publish(root: Path, day_dir: Path, version: int, data: bytes, public_pem: bytes) -> Path | None:
    """Write ``v<version>.zip`` once; ``None`` if another writer took that name first."""
    final = day_dir / f"v{version}.zip"
    fd, tmp_name = tempfile.mkstemp(dir=staging_dir(root), prefix=f".v{version}.", suffix=".zip.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        verdict = verify_packet(tmp, public_pem)
        if not verdict.ok:  # never publish what an auditor would reject
            raise PacketStoreError(f"self-check of the new packet failed: {verdict.reason}")
        os.chmod(tmp, 0o444)
        try:
            os.link(tmp, final)  # fails with EEXIST instead of overwriting
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links on this file system: O_EXCL create still never overwrites.
            try:
                out = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except FileExistsError:
                return None
            with os.fdopen(out, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(day_dir)
        return final
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def seal(root: Path, inp: PacketInput, signer: SignerLike, recorded_manifest: str | None = None) -> SealResult:
    """Seal ``inp`` into the store under ``root`` (the Zentra home). See module doc.

    The latest version is chained onto (its manifest hash signed into the next) only if
    it verifies and either carries this signer's key (nobody else can sign with it) or
    is the very version this warehouse recorded sealing (``recorded_manifest``, its
    manifest's SHA-256: a version sealed before a key rotation). A version re-signed
    with another key and put in its place would otherwise be vouched for by the
    trusted key through ``supersedes``."""
    day_dir = packet_dir(root, inp.tenant_id, inp.period)
    ev.validate_packet_input(inp)  # includes the one-tenant check; raises before any write
    for _ in range(_RACE_RETRIES):
        versions = _versions_in(day_dir)
        prev_raw: bytes | None = None
        if versions:
            latest = versions[-1]
            latest_path = day_dir / f"v{latest}.zip"
            check = verify_packet(latest_path)
            if not check.ok:
                raise PacketStoreError(
                    f"latest sealed packet {latest_path} fails verification ({check.reason}); "
                    "refusing to chain onto it"
                )
            prev_raw = _read_manifest_bytes(latest_path)
            prev_sha = hashlib.sha256(prev_raw).hexdigest()
            foreign = check.manifest is not None and check.manifest.get("key_id") != signer.key_id
            if foreign and prev_sha != recorded_manifest:
                raise PacketStoreError(
                    f"latest sealed packet {latest_path} is signed by {check.manifest.get('key_id')}, not by this "
                    f"run's key {signer.key_id}, and is not the version this warehouse sealed; refusing to chain "
                    "onto it (verify it with the key that signed it, then move it aside or restore the original)"
                )
            version, supersedes = latest + 1, prev_sha
        else:
            version, supersedes = 1, None

        members = ev.build_packet(
            inp, version, supersedes, signer.public_pem, signer.key_id, signer.key_kind
        )
        manifest_raw = members[ev.MANIFEST_NAME]
        manifest = json.loads(manifest_raw)

        if prev_raw is not None:
            prev = json.loads(prev_raw)
            if ev.content_fields(prev) == ev.content_fields(manifest):
                return SealResult(
                    path=latest_path,
                    version=latest,
                    created=False,
                    merkle_root=prev["merkle_root"],
                    manifest_sha256=prev_sha,
                    key_id=prev["key_id"],
                )

        signature = signer.sign(manifest_raw)
        data = ev.finalize_packet(members, signature)
        _ensure_dir(day_dir, _packets_root(root).parent)
        # Re-check containment now that folders exist (a symlink could have appeared).
        if packet_dir(root, inp.tenant_id, inp.period) != day_dir:
            raise PacketStoreError(f"packet folder for {inp.tenant_id!r} moved while sealing")
        published = _publish(root, day_dir, version, data, signer.public_pem)
        if published is None:
            continue  # lost a race for v<version>: look again
        return SealResult(
            path=published,
            version=version,
            created=True,
            merkle_root=manifest["merkle_root"],
            manifest_sha256=hashlib.sha256(manifest_raw).hexdigest(),
            key_id=signer.key_id,
        )
    raise PacketStoreError(f"could not seal {inp.tenant_id} {inp.period}: too many concurrent writers")


def latest_manifest(root: Path, tenant_id: str, period: str) -> tuple[int, Path, bytes] | None:
    """``(version, path, manifest.json bytes)`` of the latest sealed version, or ``None``.

    Only the manifest is read (not verified): callers compare its SHA-256 with one they
    recorded when they sealed it, which is how an unchanged day is recognised cheaply.
    """
    day_dir = packet_dir(root, tenant_id, period)
    versions = _versions_in(day_dir)
    if not versions:
        return None
    path = day_dir / f"v{versions[-1]}.zip"
    return versions[-1], path, _read_manifest_bytes(path)


def list_packets(root: Path) -> list[tuple[str, str, list[int]]]:
    """``(tenant_id, period, versions)`` for every tenant-day in the store, sorted."""
    base = _packets_root(root)
    out: list[tuple[str, str, list[int]]] = []
    if not base.is_dir():
        return out
    for tenant in sorted(os.listdir(base)):
        tdir = base / tenant
        if not ev.is_valid_tenant_id(tenant) or not tdir.is_dir():
            continue
        for period in sorted(os.listdir(tdir)):
            pdir = tdir / period
            if not ev.is_valid_period(period) or not pdir.is_dir():
                continue
            versions = _versions_in(pdir)
            if versions:
                out.append((tenant, period, versions))
    return out
