"""Sealing into the write-once store, and checking the result with stock tools."""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zentra_pipelines import packet_verify as pv
from zentra_pipelines.adapters import packet_store as store
from zentra_pipelines.adapters.signing import Signer, SigningKeyError, load_signer
from zentra_pipelines.domain import evidence as ev
from zentra_pipelines.domain import packet_zip
from zentra_pipelines.domain.evidence import PacketInput
from zentra_pipelines.packet_verify import verify_packet

needs_sha256sum = pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")

TENANT, DAY = "t_alpha", "2026-11-24"


def _inp(amount: int = 125000, tenant_rows: list[str] | None = None, tenant: str = TENANT) -> PacketInput:
    ids = tenant_rows or [tenant, tenant]
    return PacketInput(
        tenant_id=tenant,
        period=DAY,
        tables={
            "reconciliation_breaks": pl.DataFrame(
                {
                    "tenant_id": ids,
                    "intent_id": [f"in_{i}" for i in range(len(ids))],
                    "break_type": ["amount_mismatch"] * len(ids),
                    "ledger_amount_minor": [amount] * len(ids),
                    "provider_amount_minor": [124000] * len(ids),
                    "currency": ["EUR"] * len(ids),
                }
            ),
            "ledger_balances": pl.DataFrame(
                {
                    "tenant_id": [tenant],
                    "account_id": [f"{tenant}:reserved"],
                    "currency": ["EUR"],
                    "balance_minor": [0],
                }
            ),
        },
        counts={"received": 2, "accepted": 2, "quarantined": 0},
        policy_versions=["p-2026.1"],
        source_inputs=[{"path": "callbacks/a.jsonl", "sha256": "00" * 32}],
        checks=[{"name": "ledger_balanced", "passed": True, "detail": None}],
        report={"webhook_health": [{"endpoint": "ep_1", "delivered": 10, "failed": 0}]},
    )


def _key_file(tmp_path: Path, name: str = "signing.pem") -> Path:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    p = tmp_path / name
    p.write_bytes(pem)
    p.chmod(0o600)
    return p


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture()
def signer(tmp_path: Path, home: Path) -> Signer:
    return load_signer(home, str(_key_file(tmp_path)))


@pytest.fixture()
def sealed(home: Path, signer: Signer) -> store.SealResult:
    return store.seal(home, _inp(), signer)


def _extract(zip_path: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def _sha256sum_ok(folder: Path) -> bool:
    r = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True)
    return r.returncode == 0


def _openssl_ok(folder: Path) -> bool:
    r = subprocess.run(
        [
            "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing_key.pub.pem",
            "-rawin", "-in", "manifest.json", "-sigfile", "manifest.sig",
        ],
        cwd=folder,
        capture_output=True,
    )
    return r.returncode == 0


def _members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


# ------------------------------------------------------------------ happy path ---


@needs_sha256sum
@needs_openssl
def test_sealed_packet_verifies_with_stock_tools(sealed: store.SealResult, tmp_path: Path) -> None:
    assert sealed.created and sealed.version == 1
    assert sealed.path.name == "v1.zip" and sealed.path.parent.name == DAY
    folder = _extract(sealed.path, tmp_path / "x")
    assert _sha256sum_ok(folder)
    assert _openssl_ok(folder)
    m = json.loads((folder / "manifest.json").read_bytes())
    assert m["merkle_root"] == sealed.merkle_root
    assert hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() == sealed.manifest_sha256


def test_report_merkle_recipe_runs(sealed: store.SealResult, tmp_path: Path) -> None:
    """The 'How to verify' Python recipe in report.html recomputes the root as printed."""
    folder = _extract(sealed.path, tmp_path / "x")
    page = (folder / "report.html").read_text("utf-8")
    snippet = re.search(r"<pre>(python3 - &lt;&lt;.*?)</pre>", page, re.S)
    assert snippet is not None
    script = html.unescape(snippet.group(1))
    body = script.split("<<'EOF'\n", 1)[1].rsplit("\nEOF", 1)[0]
    r = subprocess.run([sys.executable, "-c", body], cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "merkle root OK"


def test_verify_packet_ok_with_given_and_embedded_key(sealed: store.SealResult, signer: Signer) -> None:
    v = verify_packet(sealed.path, signer.public_pem)
    assert v.ok, v.reason
    assert v.manifest is not None and v.manifest["version"] == 1
    v2 = verify_packet(sealed.path)
    assert v2.ok, v2.reason
    assert f"signed by embedded key {signer.key_id}" in v2.reason
    assert v2.manifest["key_kind"] == "configured"


def test_list_packets(home: Path, signer: Signer) -> None:
    store.seal(home, _inp(), signer)
    store.seal(home, _inp(amount=1), signer)
    store.seal(home, _inp(tenant="t_beta"), signer)
    assert store.list_packets(home) == [("t_alpha", DAY, [1, 2]), ("t_beta", DAY, [1])]


# ------------------------------------------------------------------- tampering ---


@needs_sha256sum
@needs_openssl
def test_flipped_byte_in_data_file_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    data = bytearray(members["data/reconciliation_breaks.csv"])
    data[-3] ^= 0x01
    members["data/reconciliation_breaks.csv"] = bytes(data)
    bad = _write_zip(tmp_path / "bad.zip", members)
    v = verify_packet(bad)
    assert not v.ok and "data/reconciliation_breaks.csv" in v.reason
    folder = _extract(bad, tmp_path / "x")
    assert not _sha256sum_ok(folder)
    assert _openssl_ok(folder)  # the manifest itself is intact; its hashes catch the flip


def test_added_file_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    members["data/extra.csv"] = b"a,b\n1,2\n"
    v = verify_packet(_write_zip(tmp_path / "bad.zip", members))
    assert not v.ok and "unexpected data/extra.csv" in v.reason


@needs_sha256sum
def test_removed_file_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    del members["data/ledger_balances.parquet"]
    bad = _write_zip(tmp_path / "bad.zip", members)
    v = verify_packet(bad)
    assert not v.ok and "missing data/ledger_balances.parquet" in v.reason
    assert not _sha256sum_ok(_extract(bad, tmp_path / "x"))


@needs_sha256sum
@needs_openssl
def test_edited_manifest_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    m = json.loads(members["manifest.json"])
    m["counts"]["quarantined"] = 0 if m["counts"]["quarantined"] else 7
    members["manifest.json"] = ev.canonical_json(m)
    bad = _write_zip(tmp_path / "bad.zip", members)
    v = verify_packet(bad)
    assert not v.ok and "signature" in v.reason
    folder = _extract(bad, tmp_path / "x")
    assert not _sha256sum_ok(folder)
    assert not _openssl_ok(folder)


@needs_openssl
def test_swapped_signature_rejected(sealed: store.SealResult, tmp_path: Path, signer: Signer) -> None:
    members = _members(sealed.path)
    other = Ed25519PrivateKey.generate()
    members["manifest.sig"] = other.sign(members["manifest.json"])
    bad = _write_zip(tmp_path / "bad.zip", members)
    assert not verify_packet(bad).ok
    assert not verify_packet(bad, signer.public_pem).ok
    assert not _openssl_ok(_extract(bad, tmp_path / "x"))


def test_resigned_by_other_key_caught_only_with_pubkey(
    sealed: store.SealResult, tmp_path: Path, signer: Signer, home: Path
) -> None:
    """A forger who rebuilds the whole packet with their own key passes the embedded-key
    check (which says so) but not a check against the operator's published key."""
    forger = load_signer(home, str(_key_file(tmp_path, "forger.pem")))
    forged = store.seal(tmp_path / "forger_home", _inp(amount=1), forger)
    v = verify_packet(forged.path)
    assert v.ok and f"embedded key {forger.key_id}" in v.reason
    assert "integrity only: pass --pubkey" in v.reason  # the line never reads as authenticity
    v2 = verify_packet(forged.path, signer.public_pem)
    assert not v2.ok and "signature does not verify" in v2.reason


@pytest.mark.parametrize(
    "payload",
    [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 100],
)
def test_hostile_bytes_never_raise(tmp_path: Path, payload: bytes) -> None:
    p = tmp_path / "v1.zip"
    p.write_bytes(payload)
    v = verify_packet(p)
    assert not v.ok and v.reason


def test_truncated_packet_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    p = tmp_path / "cut.zip"
    p.write_bytes(sealed.path.read_bytes()[:-40])
    assert not verify_packet(p).ok


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "data\\evil.csv"])
def test_unsafe_member_name_rejected(sealed: store.SealResult, tmp_path: Path, name: str) -> None:
    members = _members(sealed.path)
    members[name] = b"x"
    v = verify_packet(_write_zip(tmp_path / "bad.zip", members))
    assert not v.ok and "unsafe member name" in v.reason


def test_oversized_member_rejected(
    sealed: store.SealResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pv, "MAX_MEMBER_BYTES", 100)
    v = verify_packet(sealed.path)
    assert not v.ok and "cap" in v.reason


def test_missing_file_and_bad_pubkey(tmp_path: Path, sealed: store.SealResult) -> None:
    assert not verify_packet(tmp_path / "nope.zip").ok
    v = verify_packet(sealed.path, b"-----BEGIN PUBLIC KEY-----\ngarbage\n")
    assert not v.ok and "given public key" in v.reason


# ----------------------------------------------------------- versions & chain ---


def test_same_input_twice_creates_no_new_version(home: Path, signer: Signer, sealed: store.SealResult) -> None:
    before = sealed.path.read_bytes()
    again = store.seal(home, _inp(), signer)
    assert not again.created
    assert again.version == 1 and again.path == sealed.path
    assert again.merkle_root == sealed.merkle_root
    assert again.manifest_sha256 == sealed.manifest_sha256
    assert sorted(p.name for p in sealed.path.parent.iterdir()) == ["v1.zip"]
    assert sealed.path.read_bytes() == before


def test_changed_input_creates_v2_chained_to_v1(home: Path, signer: Signer, sealed: store.SealResult) -> None:
    v1_bytes = sealed.path.read_bytes()
    v1_manifest = _members(sealed.path)["manifest.json"]
    r2 = store.seal(home, _inp(amount=125001), signer)
    assert r2.created and r2.version == 2 and r2.path.name == "v2.zip"
    m2 = json.loads(_members(r2.path)["manifest.json"])
    assert m2["version"] == 2
    assert m2["supersedes"] == hashlib.sha256(v1_manifest).hexdigest()
    assert sealed.path.read_bytes() == v1_bytes
    v = verify_packet(r2.path, signer.public_pem)
    assert v.ok and "chain to v1.zip checked" in v.reason
    # sealing v2's content again is a no-op; going back to v1's content is a change
    assert not store.seal(home, _inp(amount=125001), signer).created
    r3 = store.seal(home, _inp(), signer)
    assert r3.created and r3.version == 3
    assert sorted(p.name for p in sealed.path.parent.iterdir()) == ["v1.zip", "v2.zip", "v3.zip"]


def test_broken_chain_detected(home: Path, signer: Signer, sealed: store.SealResult, tmp_path: Path) -> None:
    r2 = store.seal(home, _inp(amount=7), signer)
    # A copy of v2 next to a *different* v1 (e.g. v1 replaced by a forged one).
    other = tmp_path / "copy" / "packets" / TENANT / DAY
    other.mkdir(parents=True)
    shutil.copy(r2.path, other / "v2.zip")
    forged_v1 = store.seal(tmp_path / "elsewhere", _inp(amount=99), signer)
    shutil.copy(forged_v1.path, other / "v1.zip")
    v = verify_packet(other / "v2.zip")
    assert not v.ok and "chain broken" in v.reason
    # alone, v2 verifies but says the chain was not checked
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(r2.path, alone / "v2.zip")
    v = verify_packet(alone / "v2.zip")
    assert v.ok and "chain not checked" in v.reason


def test_a_tampered_previous_version_breaks_the_chain(home: Path, signer: Signer, sealed: store.SealResult) -> None:
    """v1's manifest intact (its hash still matches v2's supersedes) but a data file edited."""
    r2 = store.seal(home, _inp(amount=7), signer)
    members = _members(sealed.path)
    name = "data/reconciliation_breaks.csv"
    assert b"125000" in members[name]
    members[name] = members[name].replace(b"125000", b"925000")
    _write_zip(sealed.path, members)
    v = verify_packet(r2.path, signer.public_pem)
    assert not v.ok and "chain broken: v1.zip does not verify" in v.reason and name in v.reason


def test_renamed_version_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    p = tmp_path / "v5.zip"
    shutil.copy(sealed.path, p)
    v = verify_packet(p)
    assert not v.ok and "version 1" in v.reason


def test_never_overwrites_under_a_race(
    home: Path, signer: Signer, sealed: store.SealResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealer with a stale view (it believes the folder empty) must not clobber v1."""
    before = sealed.path.read_bytes()
    real = store._versions_in
    calls = {"n": 0}

    def stale(day_dir: Path) -> list[int]:
        calls["n"] += 1
        return [] if calls["n"] == 1 else real(day_dir)

    monkeypatch.setattr(store, "_versions_in", stale)
    r = store.seal(home, _inp(amount=5), signer)
    assert r.created and r.version == 2
    assert sealed.path.read_bytes() == before
    assert not [p for p in sealed.path.parent.iterdir() if p.name.startswith(".")]


def test_tampered_latest_version_blocks_sealing(home: Path, signer: Signer, sealed: store.SealResult) -> None:
    members = _members(sealed.path)
    members["report.html"] = members["report.html"].replace(b"Audit packet", b"Audit pocket")
    sealed.path.chmod(0o644)
    _write_zip(sealed.path, members)
    with pytest.raises(store.PacketStoreError, match="fails verification"):
        store.seal(home, _inp(amount=3), signer)


# ------------------------------------------------------------ refusals & ids ---


def test_other_tenant_row_refused_nothing_written(home: Path, signer: Signer) -> None:
    with pytest.raises(ev.TenantLeakError):
        store.seal(home, _inp(tenant_rows=[TENANT, "t_beta"]), signer)
    assert not (home / "packets").exists()
    assert store.list_packets(home) == []


@pytest.mark.parametrize("tenant", ["../x", "..", "a/b", "", "x\n", "/abs"])
def test_bad_tenant_id_refused(home: Path, signer: Signer, tenant: str) -> None:
    inp = _inp(tenant="t_alpha")
    bad = PacketInput(**{**inp.__dict__, "tenant_id": tenant})
    with pytest.raises(store.PacketStoreError):
        store.seal(home, bad, signer)
    assert not (home / "packets").exists()
    assert not (home.parent / "x").exists()


@pytest.mark.parametrize("period", ["2026-02-30", "../2026-11-24", "2026-11-24/..", "2026-11"])
def test_bad_period_refused(home: Path, signer: Signer, period: str) -> None:
    bad = PacketInput(**{**_inp().__dict__, "period": period})
    with pytest.raises(store.PacketStoreError):
        store.seal(home, bad, signer)
    assert not (home / "packets").exists()


def test_symlinked_tenant_folder_cannot_escape(home: Path, signer: Signer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "packets").mkdir()
    os.symlink(outside, home / "packets" / TENANT)
    with pytest.raises(store.PacketStoreError, match="escapes"):
        store.seal(home, _inp(), signer)
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------- keys ---


def test_development_key_created_once(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zentra.signing"):
        s1 = load_signer(home, None)
    key_file = home / "keys" / "dev_signing_key.pem"
    assert key_file.is_file()
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert s1.key_kind == "development"
    assert "DEVELOPMENT" in caplog.text
    pem = key_file.read_bytes()
    assert b"PRIVATE KEY" in pem
    for line in pem.splitlines()[1:-1]:
        assert line.decode() not in caplog.text  # never log key material
    s2 = load_signer(home, "")
    assert s2.key_id == s1.key_id and key_file.read_bytes() == pem
    r = store.seal(home, _inp(), s2)
    v = verify_packet(r.path)
    assert v.ok and v.manifest["key_kind"] == "development"


def test_configured_key(tmp_path: Path, home: Path) -> None:
    key_path = _key_file(tmp_path)
    s = load_signer(home, str(key_path))
    assert s.key_kind == "configured"
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert s.key_id == "ed25519:" + hashlib.sha256(raw).hexdigest()
    sig = s.sign(b"hello")
    assert len(sig) == 64
    serialization.load_pem_public_key(s.public_pem).verify(sig, b"hello")
    assert not (home / "keys").exists()
    assert "PRIVATE" not in repr(s)


def test_bad_key_files(tmp_path: Path, home: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(SigningKeyError, match=re.escape(str(missing))):
        load_signer(home, str(missing))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWNvbnRlbnRz\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError) as exc:
        load_signer(home, str(junk))
    assert str(junk) in str(exc.value) and "c2VjcmV0" not in str(exc.value)
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519"):
        load_signer(home, str(ec_key))


def test_cli_main_exit_codes(sealed: store.SealResult, signer: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pub = tmp_path / "pub.pem"
    pub.write_bytes(signer.public_pem)
    assert pv.cli_main([str(sealed.path), "--pubkey", str(pub)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and out.count("\n") == 1
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"junk")
    assert pv.cli_main([str(bad)]) == 1
    assert capsys.readouterr().out.startswith("FAIL ")
    assert pv.cli_main([str(sealed.path), "--pubkey", str(tmp_path / "none.pem")]) == 2
    assert pv.cli_main([]) == 2
    assert pv.cli_main([str(tmp_path / "missing.zip")]) == 2  # no such file: bad usage, not a failed check
    assert capsys.readouterr().out == f"FAIL {tmp_path / 'missing.zip'}: no such file\n"
    assert pv.cli_main([str(tmp_path)]) == 2
    assert capsys.readouterr().out == f"FAIL {tmp_path}: not a file\n"


def test_symlink_member_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name == "report.html":
                info.create_system = 3
                info.external_attr = (0o120777) << 16  # symlink
            zf.writestr(info, data)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(buf.getvalue())
    v = verify_packet(bad)
    assert not v.ok and "not a regular file" in v.reason


# ------------------------------------------------ the container under the members ---


def _data_member(zip_path: Path) -> zipfile.ZipInfo:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.getinfo("data/reconciliation_breaks.csv")


def _patched(src: Path, dest: Path, offset: int, new: bytes) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset : offset + len(new)] = new
    dest.write_bytes(bytes(raw))
    return dest


def test_a_stored_member_packet_still_verifies(sealed: store.SealResult, tmp_path: Path) -> None:
    """Members zipfile stores (method 0) are read through zipfile, not the ISA-L path."""
    members = _members(sealed.path)
    p = tmp_path / "v1.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            zf.writestr(name, members[name])
    p.write_bytes(buf.getvalue())
    assert verify_packet(p).ok


def test_a_damaged_deflate_stream_is_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    info = _data_member(sealed.path)
    start = info.header_offset + 30 + len(info.filename)
    raw = sealed.path.read_bytes()
    for at in (start, start + info.compress_size // 2, start + info.compress_size - 1):
        bad = _patched(sealed.path, tmp_path / f"bad{at}.zip", at, bytes([raw[at] ^ 0xFF]))
        v = verify_packet(bad)
        assert not v.ok and "reconciliation_breaks.csv" in v.reason, (at, v.reason)


def test_a_local_header_naming_another_member_is_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    info = _data_member(sealed.path)
    other = b"data/reconciliation_breakz.csv"
    bad = _patched(sealed.path, tmp_path / "bad.zip", info.header_offset + 30, other)
    v = verify_packet(bad)
    assert not v.ok and v.reason == "member data/reconciliation_breaks.csv: local header and directory differ"


@pytest.mark.parametrize(("at", "value"), [(8, b"\x00\x00"), (6, b"\x01\x00"), (0, b"PK\x01\x02")])
def test_a_local_header_that_disagrees_is_rejected(
    sealed: store.SealResult, tmp_path: Path, at: int, value: bytes
) -> None:
    """Local method 0 (stored) under a deflated directory entry, the encryption flag, no local signature."""
    info = _data_member(sealed.path)
    v = verify_packet(_patched(sealed.path, tmp_path / "bad.zip", info.header_offset + at, value))
    assert not v.ok and v.reason.startswith("member data/reconciliation_breaks.csv"), v.reason


def test_a_wrong_crc_in_the_directory_is_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    info = _data_member(sealed.path)
    entry = sealed.path.read_bytes().rfind(info.filename.encode()) - 46  # the directory comes last
    bad = _patched(sealed.path, tmp_path / "bad.zip", entry + 16, (info.CRC ^ 1).to_bytes(4, "little"))
    v = verify_packet(bad)
    assert not v.ok and v.reason == "member data/reconciliation_breaks.csv fails its CRC-32 or size"


class _TrailingJunk:
    """A deflater whose stream is followed by bytes that belong to no stream."""

    def __init__(self, level: int) -> None:
        self._inner = zlib.compressobj(level, zlib.DEFLATED, -15)

    def compress(self, data: bytes) -> bytes:
        return self._inner.compress(data)

    def flush(self) -> bytes:
        return self._inner.flush() + b"junk"


def test_bytes_after_the_deflate_stream_are_rejected(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    entries = [packet_zip.Member(n, members[n], ev.deflate_level(n)) for n in sorted(members)]
    p = tmp_path / "v1.zip"
    p.write_bytes(packet_zip.write_zip(entries, compressor=_TrailingJunk))
    v = verify_packet(p)
    assert not v.ok and v.reason.endswith(": the deflate stream does not end with the member")


@pytest.mark.parametrize("chunk", [100, 777, 4096, 65536, 1 << 20])
@pytest.mark.parametrize("deflater", ["isal", "zlib"])
def test_members_inflate_whole_whatever_the_chunk_size(tmp_path: Path, chunk: int, deflater: str) -> None:
    """Small reads leave output inside the inflater after the last input byte (a real
    case for 4096-byte reads of this member): it is drained, not taken for a short stream."""
    body = b"".join(b"t_alpha,in_%08d,%d,EUR\n" % (i, i * 7919 % 100003) for i in range(40_000)) + b"0" * 300_000
    members = [packet_zip.Member("data/x.csv", body, 1)]
    compressor = packet_zip.isal_compressor if deflater == "isal" else packet_zip.zlib_compressor
    p = tmp_path / "x.zip"
    p.write_bytes(packet_zip.write_zip(members, compressor=compressor))
    with p.open("rb") as fh, zipfile.ZipFile(fh) as zf:
        assert b"".join(pv._member_chunks(fh, zf, zf.getinfo("data/x.csv"), chunk)) == body


def _resigned(members: dict[str, bytes], signer: Signer, drop: tuple[str, ...], path: Path) -> Path:
    """The packet re-built by the holder of the signing key without ``drop``: manifest,
    Merkle root, SHA256SUMS and signature all consistent, only the contents short."""
    kept = {n: b for n, b in members.items() if n not in drop}
    m = json.loads(kept["manifest.json"])
    m["files"] = [f for f in m["files"] if f["path"] not in drop]
    m["merkle_root"] = ev.merkle_root([kept[f["path"]] for f in m["files"]]).hex()
    kept["manifest.json"] = ev.canonical_json(m)
    kept["SHA256SUMS"] = ev.sha256sums({n: b for n, b in kept.items() if n not in ("SHA256SUMS", "manifest.sig")})
    kept["manifest.sig"] = signer.sign(kept["manifest.json"])
    return _write_zip(path, kept)


@pytest.mark.parametrize("drop", [("report.html",), ("data/reconciliation_breaks.csv",),
                                  ("data/reconciliation_breaks.csv", "data/reconciliation_breaks.parquet")])
def test_a_signed_packet_short_of_a_contract_member_is_rejected(
    tmp_path: Path, signer: Signer, drop: tuple[str, ...]
) -> None:
    counted = replace(_inp(), counts={"rows_ledger_balances": 1, "rows_reconciliation_breaks": 2})
    whole = store.seal(tmp_path / "counted", counted, signer)
    assert verify_packet(whole.path, signer.public_pem).ok
    bad = _resigned(_members(whole.path), signer, drop, tmp_path / "short.zip")
    v = verify_packet(bad, signer.public_pem)
    assert not v.ok and "manifest" in v.reason and drop[0].split("/")[-1].split(".")[0] in v.reason


@needs_sha256sum
@pytest.mark.parametrize("separator", ["\r", "\x0b", "\x0c", "\x85", "\u2028"])
def test_sha256sums_split_on_other_than_newline_is_rejected_like_sha256sum_does(
    sealed: store.SealResult, tmp_path: Path, separator: str
) -> None:
    members = _members(sealed.path)
    lines = members["SHA256SUMS"].decode().split("\n")[:-1]
    members["SHA256SUMS"] = (lines[0] + separator + "\n".join(lines[1:]) + "\n").encode()
    bad = _write_zip(tmp_path / "sums.zip", members)
    assert not verify_packet(bad).ok
    assert not _sha256sum_ok(_extract(bad, tmp_path / "x"))


def test_sha256sums_with_crlf_lines_still_verifies(sealed: store.SealResult, tmp_path: Path) -> None:
    members = _members(sealed.path)
    members["SHA256SUMS"] = members["SHA256SUMS"].replace(b"\n", b"\r\n")
    assert verify_packet(_write_zip(tmp_path / "crlf.zip", members)).ok


def test_a_pubkey_that_is_no_public_key_is_bad_input_exit_2(
    sealed: store.SealResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_bytes(b"hello\n")
    assert pv.cli_main([str(sealed.path), "--pubkey", str(not_a_key)]) == 2
    assert "not a PEM public key" in capsys.readouterr().err


def test_a_latest_version_re_signed_by_another_key_is_never_chained_onto(
    home: Path, signer: Signer, sealed: store.SealResult, tmp_path: Path
) -> None:
    """A forger replaces v1 with a packet of their own (their key, other balances): the
    next seal would have the trusted key vouch for it through ``supersedes``."""
    forger = load_signer(home, str(_key_file(tmp_path, "forger.pem")))
    forged = store.seal(tmp_path / "forger_home", _inp(amount=1), forger)
    shutil.copyfile(forged.path, sealed.path)
    with pytest.raises(store.PacketStoreError, match=f"is signed by {forger.key_id}, not by this run's key"):
        store.seal(home, _inp(amount=125001), signer)
    assert sorted(p.name for p in sealed.path.parent.iterdir()) == ["v1.zip"]


def test_a_version_sealed_here_before_a_key_rotation_is_chained_onto(
    home: Path, signer: Signer, sealed: store.SealResult, tmp_path: Path
) -> None:
    rotated = load_signer(home, str(_key_file(tmp_path, "rotated.pem")))
    r2 = store.seal(home, _inp(amount=125001), rotated, recorded_manifest=sealed.manifest_sha256)
    assert r2.created and r2.version == 2
    v = verify_packet(r2.path, rotated.public_pem)
    assert v.ok and f"v1.zip is signed by another key {signer.key_id}: verify it with that key" in v.reason


@pytest.mark.parametrize("where", ["in_front", "appended", "comment"])
def test_bytes_outside_the_fixed_layout_are_rejected(sealed: store.SealResult, tmp_path: Path, where: str) -> None:
    """zipfile reads past them; a streaming reader would extract a forged zip in front."""
    data = sealed.path.read_bytes()
    forged_front = _write_zip(tmp_path / "front.zip", {"data/x.csv": b"forged\n"}).read_bytes()
    bad = tmp_path / "v1.zip"
    if where == "in_front":
        bad.write_bytes(forged_front + data)
    elif where == "appended":
        bad.write_bytes(data + b"garbage")
    else:
        bad.write_bytes(data[:-2] + (5).to_bytes(2, "little") + b"hello")
    with zipfile.ZipFile(bad) as zf:  # stdlib accepts every one of them
        assert zf.testzip() is None
    v = verify_packet(bad, None)
    assert not v.ok and ("outside" in v.reason or "comment" in v.reason or "end record" in v.reason), v.reason
