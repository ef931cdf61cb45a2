"""The pure evidence layer: Merkle root, canonical JSON, tables, zip, report."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import polars as pl
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zentra_pipelines.domain import evidence as ev
from zentra_pipelines.domain.evidence import PacketInput

# ---------------------------------------------------------------------- Merkle ---


def _naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, transcribed literally (no shared code with the module)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _naive_mth(leaves[:k]) + _naive_mth(leaves[k:])).digest()


def _leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


# The Certificate Transparency reference leaves and tree heads (sizes 0..8).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(0, 8))
def test_merkle_root_matches_naive_reference(n: int) -> None:
    leaves = [f"file-{i}".encode() * (i + 1) for i in range(n)]
    assert ev.merkle_root(leaves) == _naive_mth(leaves)


def test_merkle_root_known_shapes() -> None:
    d = [bytes([i]) * 3 for i in range(7)]
    L = [_leaf(x) for x in d]
    shapes = {
        0: hashlib.sha256(b"").digest(),
        1: L[0],
        2: _node(L[0], L[1]),
        3: _node(_node(L[0], L[1]), L[2]),
        4: _node(_node(L[0], L[1]), _node(L[2], L[3])),
        5: _node(_node(_node(L[0], L[1]), _node(L[2], L[3])), L[4]),
        6: _node(_node(_node(L[0], L[1]), _node(L[2], L[3])), _node(L[4], L[5])),
        7: _node(
            _node(_node(L[0], L[1]), _node(L[2], L[3])), _node(_node(L[4], L[5]), L[6])
        ),
    }
    for n, want in shapes.items():
        assert ev.merkle_root(d[:n]) == want, n


@pytest.mark.parametrize("n", range(0, 9))
def test_merkle_root_matches_certificate_transparency_vectors(n: int) -> None:
    assert ev.merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n]


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 17])
def test_member_hashes_are_the_plain_and_leaf_hashes_of_the_bytes(size: int) -> None:
    data = bytes(i % 251 for i in range(size))  # chunk boundaries fall mid-pattern
    assert ev.member_hashes(data) == (hashlib.sha256(data).hexdigest(), _leaf(data))


def test_merkle_leaf_order_matters() -> None:
    assert ev.merkle_root([b"a", b"b"]) != ev.merkle_root([b"b", b"a"])
    # second-preimage resistance: a leaf equal to an inner node's preimage differs
    inner = b"\x01" + _leaf(b"a") + _leaf(b"b")
    assert ev.merkle_root([inner[1:]]) != ev.merkle_root([b"a", b"b"])


# -------------------------------------------------------------- canonical JSON ---


def test_canonical_json_shape() -> None:
    out = ev.canonical_json({"b": 1, "a": {"z": [1, 2], "y": None}, "é": "ü"})
    assert out == '{"a":{"y":null,"z":[1,2]},"b":1,"é":"ü"}\n'.encode()
    assert out.endswith(b"\n") and not out.endswith(b"\n\n")


def test_canonical_json_is_order_independent() -> None:
    a = ev.canonical_json({"x": 1, "y": 2})
    b = ev.canonical_json({"y": 2, "x": 1})
    assert a == b


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1, 2}, b"bytes"])
def test_canonical_json_refuses_non_json(bad: object) -> None:
    with pytest.raises(ev.EvidenceError):
        ev.canonical_json({"v": bad})


# ---------------------------------------------------------------------- tables ---


def test_csv_integers_never_floats() -> None:
    df = pl.DataFrame(
        {"amount_minor": [125000, None, -(2**63), 2**63 - 1]}, schema={"amount_minor": pl.Int64}
    )
    text = ev.csv_bytes(df).decode()
    lines = text.split("\n")
    assert lines[0] == "amount_minor"
    assert "." not in text and "e" not in text.lower().replace("amount_minor", "")
    assert set(lines[1:-1]) == {"125000", "", str(-(2**63)), str(2**63 - 1)}
    assert text.endswith("\n") and "\r" not in text


def test_csv_rfc4180_quoting_and_row_order() -> None:
    df = pl.DataFrame({"id": ["b", "a", "c"], "detail": ['x,"y"', "plain", "two\nlines"]})
    shuffled = df.reverse()
    assert ev.csv_bytes(df) == ev.csv_bytes(shuffled)
    text = ev.csv_bytes(df).decode()
    assert text == 'id,detail\na,plain\nb,"x,""y"""\nc,"two\nlines"\n'


def test_parquet_deterministic_and_typed() -> None:
    df = pl.DataFrame(
        {"tenant_id": ["t", "t", "t"], "amount_minor": [3, 1, None], "currency": ["EUR"] * 3}
    )
    a = ev.parquet_bytes(df)
    b = ev.parquet_bytes(df.reverse())
    assert a == b
    table = pq.read_table(io.BytesIO(a))
    assert str(table.schema.field("amount_minor").type) == "int64"
    assert table.column("amount_minor").to_pylist() == [1, 3, None]
    meta = pq.ParquetFile(io.BytesIO(a)).metadata
    assert meta.row_group(0).column(1).statistics is None


def test_parquet_is_zstd_without_dictionary_pages() -> None:
    df = pl.DataFrame({"tenant_id": ["t"] * 4, "entry_hash": ["a" * 64, "b" * 64, "c" * 64, "d" * 64]})
    meta = pq.ParquetFile(io.BytesIO(ev.parquet_bytes(df))).metadata
    for i in range(meta.num_columns):
        column = meta.row_group(0).column(i)
        assert column.compression == "ZSTD"
        assert column.dictionary_page_offset is None
        assert "PLAIN" in column.encodings and "RLE_DICTIONARY" not in column.encodings


def test_nested_columns_serialise() -> None:
    df = pl.DataFrame({"k": [2, 1], "tags": [["x"], ["y", "z"]]})
    assert b'"[""y"",""z""]"' in ev.csv_bytes(df)
    assert ev.parquet_bytes(df) == ev.parquet_bytes(df.reverse())


# ------------------------------------------------------------------------- zip ---


def _packet_input(**over: object) -> PacketInput:
    base = dict(
        tenant_id="t_alpha",
        period="2026-11-24",
        tables={
            "reconciliation_breaks": pl.DataFrame(
                {
                    "tenant_id": ["t_alpha", "t_alpha"],
                    "intent_id": ["in_2", "in_1"],
                    "break_type": ["amount_mismatch", "missing_in_ledger"],
                    "ledger_amount_minor": [125000, None],
                    "provider_amount_minor": [124000, 5000],
                    "currency": ["EUR", "EUR"],
                    "owner": ["ops-eu", "ops-eu"],
                    "status": ["open", "open"],
                }
            ),
            "review_queue": pl.DataFrame(
                {
                    "tenant_id": ["t_alpha"],
                    "intent_id": ["in_9"],
                    "reason": ["velocity"],
                    "owner": ["risk"],
                    "policy_version": ["p-2026.1"],
                }
            ),
        },
        counts={"received": 3, "accepted": 2, "quarantined": 1},
        policy_versions=["p-2026.1"],
        source_inputs=[{"path": "callbacks/2026-11-24.jsonl", "sha256": "ab" * 32}],
        checks=[{"name": "ledger_balanced", "passed": True, "detail": "0 unbalanced"}],
        report={"webhook_health": [{"endpoint": "https://x.example/hook", "success_rate": "0.99"}]},
    )
    base.update(over)
    return PacketInput(**base)  # type: ignore[arg-type]


_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_PUB_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
_KEY_ID = ev.key_id_for_raw_public_key(
    _KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
)


def _build(inp: PacketInput, version: int = 1, supersedes: str | None = None) -> bytes:
    members = ev.build_packet(inp, version, supersedes, _PUB_PEM, _KEY_ID, "configured")
    return ev.finalize_packet(members, _KEY.sign(members["manifest.json"]))


def test_zip_byte_identical_across_builds() -> None:
    a = _build(_packet_input())
    # same content, rows and dict entries in another order
    inp2 = _packet_input(
        tables={k: v.reverse() for k, v in _packet_input().tables.items()},
        counts={"quarantined": 1, "accepted": 2, "received": 3},
    )
    b = _build(inp2)
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert set(names) == {
            "SHA256SUMS",
            "data/reconciliation_breaks.csv",
            "data/reconciliation_breaks.parquet",
            "data/review_queue.csv",
            "data/review_queue.parquet",
            "manifest.json",
            "manifest.sig",
            "report.html",
            "signing_key.pub.pem",
        }
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr == 0o644 << 16
            assert info.compress_type == zipfile.ZIP_DEFLATED


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a/../b", "", "a//b", "./a", "C:x"])
def test_zip_rejects_unsafe_names(name: str) -> None:
    assert not ev.is_safe_member_name(name)
    with pytest.raises(ev.EvidenceError):
        ev.deterministic_zip({name: b"x"})


def test_manifest_contents_and_sums() -> None:
    members = ev.build_packet(_packet_input(), 1, None, _PUB_PEM, _KEY_ID, "configured")
    raw = members["manifest.json"]
    m = json.loads(raw)
    assert ev.canonical_json(m) == raw
    assert m["packet_format"] == "zentra.audit_packet/1"
    assert m["version"] == 1 and m["supersedes"] is None
    assert m["merkle"] == {"algorithm": "rfc6962-sha256", "leaves": "files[].bytes in path order"}
    paths = [f["path"] for f in m["files"]]
    assert paths == sorted(paths)
    assert "manifest.json" not in paths and "SHA256SUMS" not in paths
    by_path = {f["path"]: f for f in m["files"]}
    assert by_path["report.html"]["rows"] is None
    assert by_path["signing_key.pub.pem"]["rows"] is None
    assert by_path["data/reconciliation_breaks.csv"]["rows"] == 2
    for p, f in by_path.items():
        assert f["sha256"] == hashlib.sha256(members[p]).hexdigest()
        assert f["bytes"] == len(members[p])
    assert m["merkle_root"] == _naive_mth([members[p] for p in paths]).hex()
    sums = members["SHA256SUMS"].decode().splitlines()
    assert [line.split("  ", 1)[1] for line in sums] == sorted([*paths, "manifest.json"])
    for line in sums:
        digest, p = line.split("  ", 1)
        assert digest == hashlib.sha256(members[p]).hexdigest()


def test_version_and_supersedes_rules() -> None:
    inp = _packet_input()
    with pytest.raises(ev.EvidenceError):
        ev.build_packet(inp, 1, "ab" * 32, _PUB_PEM, _KEY_ID, "configured")
    with pytest.raises(ev.EvidenceError):
        ev.build_packet(inp, 2, None, _PUB_PEM, _KEY_ID, "configured")
    with pytest.raises(ev.EvidenceError):
        ev.build_packet(inp, 0, None, _PUB_PEM, _KEY_ID, "configured")
    with pytest.raises(ev.EvidenceError):
        ev.build_packet(inp, 1, None, _PUB_PEM, _KEY_ID, "prod")
    # the content (hence the Merkle root) does not depend on the place in the chain
    a = json.loads(ev.build_packet(inp, 1, None, _PUB_PEM, _KEY_ID, "configured")["manifest.json"])
    b = json.loads(
        ev.build_packet(inp, 2, "cd" * 32, _PUB_PEM, _KEY_ID, "configured")["manifest.json"]
    )
    assert ev.content_fields(a) == ev.content_fields(b)


@pytest.mark.parametrize("period", ["2026-02-30", "2026-1-01", "20261124", "2026-11-24\n"])
def test_invalid_period_refused(period: str) -> None:
    with pytest.raises(ev.EvidenceError):
        ev.build_packet(_packet_input(period=period), 1, None, _PUB_PEM, _KEY_ID, "configured")


def test_other_tenant_row_refused() -> None:
    tables = dict(_packet_input().tables)
    tables["review_queue"] = pl.DataFrame({"tenant_id": ["t_alpha", "t_beta"], "x": [1, 2]})
    with pytest.raises(ev.TenantLeakError):
        ev.build_packet(_packet_input(tables=tables), 1, None, _PUB_PEM, _KEY_ID, "configured")
    tables["review_queue"] = pl.DataFrame({"tenant_id": [None]}, schema={"tenant_id": pl.String})
    with pytest.raises(ev.TenantLeakError):
        ev.build_packet(_packet_input(tables=tables), 1, None, _PUB_PEM, _KEY_ID, "configured")


# ---------------------------------------------------------------------- report ---


def test_report_escapes_untrusted_ids() -> None:
    evil = '<script>alert("x")</script>'
    tables = {
        "reconciliation_breaks": pl.DataFrame(
            {"tenant_id": ["t_alpha"], "intent_id": [evil], "break_type": ["unknown_intent"]}
        )
    }
    inp = _packet_input(
        tables=tables,
        checks=[{"name": "<b>check</b>", "passed": False, "detail": "<img src=x onerror=1>"}],
        report={"webhook_health": [{"endpoint": '"><script>1</script>', "ok": 1}]},
        counts={"<i>n</i>": 1},
    )
    members = ev.build_packet(inp, 1, None, _PUB_PEM, _KEY_ID, "development")
    page = members["report.html"].decode()
    assert "<script" not in page.lower()
    assert "<img" not in page and "<b>check" not in page and "<i>n" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "0 passed, 1 failed" in page
    assert "Development signing key" in page


def test_report_content_and_verification_section() -> None:
    members = ev.build_packet(_packet_input(), 1, None, _PUB_PEM, _KEY_ID, "configured")
    page = members["report.html"].decode()
    for needle in (
        "sha256sum -c SHA256SUMS",
        "openssl pkeyutl -verify -pubin -inkey signing_key.pub.pem -rawin "
        "-in manifest.json -sigfile manifest.sig",
        "Merkle",
        "Reconciliation breaks",
        "ops-eu",
        "open",
        "Review queue",
        "velocity",
        "Webhook health",
        "https://x.example/hook",
        "1 passed, 0 failed",
        "received",
        "1,250.00 EUR",
        _KEY_ID,
    ):
        assert needle in page, needle
    assert "http://" not in page and "src=" not in page  # nothing to fetch
    # the page never carries chain position, so re-sealing compares content only
    members2 = ev.build_packet(_packet_input(), 3, "ef" * 32, _PUB_PEM, _KEY_ID, "configured")
    assert members2["report.html"] == members["report.html"]


def test_packet_bytes_identical_across_processes() -> None:
    """No hash-seed, dict-order or clock dependence: two fresh interpreters agree."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        f"import hashlib, sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
        "import test_evidence as t;"
        "print(hashlib.sha256(t._build(t._packet_input())).hexdigest())"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout.strip())
    assert outs == {hashlib.sha256(_build(_packet_input())).hexdigest()}


def test_csv_defuses_spreadsheet_formulas_but_parquet_stays_exact():
    import io

    import polars as pl

    from zentra_pipelines.domain import evidence as ev

    df = pl.DataFrame({"error": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "ok", None], "n": [-1, 2, 3, 4, 5, 6]})
    text = ev.csv_bytes(df).decode()
    assert "'=HYPERLINK" in text and "'+1" in text and "'-2" in text and "'@SUM" in text
    assert sorted(pl.read_csv(io.BytesIO(ev.csv_bytes(df)))["n"].to_list()) == [-1, 2, 3, 4, 5, 6]
    assert pl.read_parquet(io.BytesIO(ev.parquet_bytes(df))).sort("n")["error"].to_list()[0] == "=HYPERLINK(\"http://x\")"


_FORMULA_CASES = [None, "", "=1", "+x", "-3", "@a", "\tq", "\rz", "a=", " =x", "é=", "'=", "ok", "\n=", "-", "ü"]


def test_formula_columns_are_exactly_the_columns_the_guard_changes() -> None:
    """build_packet guards only the text columns _formula_columns names (read off the
    Arrow buffers); that must be exactly the columns the per-cell regex would change,
    whatever the nulls, empty texts, non-ASCII first characters or chunk offsets."""
    import random

    import pyarrow as pa

    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 7)
        cols = {}
        for j in range(3):
            pool = rng.sample(_FORMULA_CASES, rng.randint(1, len(_FORMULA_CASES)))
            if rng.random() < 0.5:  # a column with no formula cell at all
                pool = [v for v in pool if v is None or v[:1] not in ev.FORMULA_PREFIXES] or [None]
            cols[f"c{j}"] = pl.Series([rng.choice(pool) for _ in range(n)], dtype=pl.String)
        df = pl.DataFrame(cols)
        if n > 2 and rng.random() < 0.5:
            df = pl.concat([df.slice(1), df.slice(0, 1)], rechunk=False)
        df = ev.canonical_frame(df)
        guarded = ev._formula_columns(ev._arrow_of_canonical(df))
        assert guarded == {c for c in df.columns if df[c].str.contains(ev._FORMULA_START).any()}
        assert ev._csv_of_canonical(df, guarded) == ev.csv_bytes(df)
    # a sliced Arrow array (non-zero offset) is read from its own offset
    arr = pa.array(["=x", "ok", "", None, "y"], pa.large_string())
    assert ev._formula_columns(pa.table({"a": arr.slice(1)})) == set()
    assert ev._formula_columns(pa.table({"a": arr.slice(0, 2)})) == {"a"}
    assert ev._formula_columns(pa.table({"a": pa.array(["ok", "-1"], pa.string())})) == {"a"}
    # a text layout it cannot read is always guarded
    assert ev._formula_columns(pa.table({"a": pa.array(["ok"], pa.string_view())})) == {"a"}


def test_packet_csv_is_csv_bytes_of_the_table() -> None:
    df = pl.DataFrame(
        {
            "tenant_id": ["t_alpha"] * 5,
            "id": ["b", "a", "c", "d", "e"],
            "detail": ["=cmd()", "plain", None, "", "é"],
            "note": ["x", "y", "z", "w", "v"],
            "amount_minor": [-5, 4, 3, 2, 1],
        }
    )
    members = ev.build_packet(_packet_input(tables={"t": df}), 1, None, _PUB_PEM, _KEY_ID, "configured")
    assert members["data/t.csv"] == ev.csv_bytes(df)
    assert b"'=cmd()" in members["data/t.csv"]
    assert members["data/t.parquet"] == ev.parquet_bytes(df)


def test_canonical_frame_is_the_sort_by_every_column() -> None:
    """The prefix shortcut (sort by the first columns, check no two neighbours tie)
    must give exactly the order of sorting by every sortable column, nulls last."""
    import random

    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(0, 9)
        cols = {
            "t": pl.Series([rng.choice(["t_a", "t_a", None]) for _ in range(n)], dtype=pl.String),
            "k": pl.Series([rng.choice([None, 1, 2, 3, 4, 5, 6, 7, 8]) for _ in range(n)], dtype=pl.Int64),
            "f": pl.Series([rng.choice([0.0, -0.0, 1.5, None]) for _ in range(n)], dtype=pl.Float64),
            "s": pl.Series([rng.choice(["", "a", "b", None]) for _ in range(n)], dtype=pl.String),
            "nested": pl.Series([[rng.randint(0, 2)] for _ in range(n)], dtype=pl.List(pl.Int64)),
        }
        order = list(cols)
        rng.shuffle(order)
        df = pl.DataFrame({c: cols[c] for c in order})
        keys = [c for c in df.columns if c != "nested"]
        got = ev.canonical_frame(df)
        want = df.sort(keys, nulls_last=True, maintain_order=True) if n > 1 else df
        assert got.equals(want, null_equal=True), (df, got, want)


def test_a_break_first_seen_after_its_day_closed_has_no_age_in_that_days_packet():
    from datetime import date, datetime

    from zentra_pipelines.domain.packet_plan import age_at_day_end

    breaks = pl.DataFrame({"first_seen": [datetime(2026, 11, 20, 1), datetime(2026, 11, 18, 23),
                                          datetime(2026, 11, 21, 0), datetime(2026, 11, 22, 9)]})
    aged = age_at_day_end(breaks, date(2026, 11, 20))
    assert aged["age_days"].to_list() == [0, 2, 0, None]
