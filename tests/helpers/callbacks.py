"""Build provider callback lines (contract 2.1) and run them through the real ingest.

``make_callback`` writes one JSONL line exactly as the webhook receiver would have
landed it: a JSON envelope whose ``body`` is the raw request body (a string) signed
with the Standard Webhooks scheme. ``run_lines`` lands lines in a temporary folder,
archives and verifies them in a real DuckDB warehouse file and converges the verdicts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from zentra_pipelines.adapters.config import load_webhook_keys
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.callbacks import Convergence, converge
from zentra_pipelines.domain.webhooks import sign
from zentra_pipelines.ingest import ArchiveResult, archive_landing, verify_new_callbacks


class _Missing:
    """Sentinel: drop this key from the JSON object instead of setting it."""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "MISSING"


MISSING: Any = _Missing()


def make_secret(seed: str, size: int = 32) -> str:
    """A deterministic `whsec_<base64>` secret of `size` key bytes."""
    key = b""
    counter = 0
    while len(key) < size:
        key += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return "whsec_" + base64.b64encode(key[:size]).decode()


ALPHA_SECRET = make_secret("t_alpha/acme_pay")
ALPHA_SECRET_NEXT = make_secret("t_alpha/acme_pay/rotated", size=100)  # > 64 bytes: HMAC hashes the key
BETA_SECRET = make_secret("t_beta/acme_pay")
GAMMA_SECRET = make_secret("t_gamma/acme_pay")  # configured nowhere: an attacker's key

DEFAULT_SECRETS: dict[str, dict[str, list[str]]] = {
    "t_alpha": {"acme_pay": [ALPHA_SECRET]},
    "t_beta": {"acme_pay": [BETA_SECRET]},
}

#: webhook-timestamp of the default callback, and the receiver's clock 3.12 s later.
T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
TS0 = int(T0.timestamp())


def iso(moment: datetime) -> str:
    """received_at / occurred_at as the receiver writes them: UTC, milliseconds, Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def overridden(base: dict, overrides: Mapping[str, Any]) -> dict:
    """A copy of ``base`` with each override set, or its key removed where it is MISSING."""
    out = dict(base)
    for key, value in overrides.items():
        if value is MISSING:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def flat_body(**overrides: Any) -> dict:
    """A valid api_version 2026-01-01 body; keyword MISSING drops a key."""
    base = {
        "api_version": "2026-01-01",
        "event_id": "evt_0001",
        "type": "payment.captured",
        "intent_id": "int_0001",
        "provider_ref": "pr_0001",
        "amount_minor": 125000,
        "currency": "EUR",
        "sequence": 1,
        "occurred_at": "2026-11-24T09:59:58.000Z",
    }
    return overridden(base, overrides)


def nested_body(*, amount: Any = None, obj: Any = None, **overrides: Any) -> dict:
    """A valid api_version 2026-06-01 body (nested `object.amount`).

    ``amount`` / ``obj`` are override mappings for `object.amount` and `object`;
    either may also be MISSING or any non-object JSON value.
    """
    amount_obj: Any = {"value": 125000, "currency": "EUR"}
    if isinstance(amount, Mapping):
        amount_obj = overridden(amount_obj, amount)
    elif amount is not None:
        amount_obj = amount
    inner: Any = {"intent_id": "int_0001", "provider_ref": "pr_0001", "amount": amount_obj}
    if amount_obj is MISSING:
        inner.pop("amount")
    if isinstance(obj, Mapping):
        inner = overridden(inner, obj)
    elif obj is not None:
        inner = obj
    base = {
        "api_version": "2026-06-01",
        "event_id": "evt_0001",
        "type": "payment.captured",
        "occurred_at": "2026-11-24T09:59:58.000Z",
        "sequence": 1,
        "object": inner,
    }
    if inner is MISSING:
        base.pop("object")
    return overridden(base, overrides)


def body_text(body: Mapping | str) -> str:
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))


def make_callback(
    body: Mapping | str,
    *,
    tenant: Any = "t_alpha",
    provider: Any = "acme_pay",
    secret: str = ALPHA_SECRET,
    webhook_id: Any = None,
    ts: Any = None,
    received_at: Any = None,
    sign_with: str | Sequence[str] | None = None,
    signature: Any = None,
    headers_override: Mapping[str, Any] | None = None,
    envelope_override: Mapping[str, Any] | None = None,
) -> str:
    """One callback line (no trailing newline) per contract 2.1.

    * ``body``: a dict (serialised compactly) or the exact raw body string.
    * ``ts``: webhook-timestamp (int seconds, or any raw header value); defaults to
      TS0, or to the whole second of ``received_at`` minus 3 s when that is given.
    * ``received_at``: a datetime or a raw string; defaults to ts + 3.12 s.
    * ``sign_with``: one secret or several (several space-separated signatures);
      defaults to ``secret``. ``signature`` sets the raw header value instead.
    * ``headers_override`` / ``envelope_override``: set keys, or drop them with MISSING.
    """
    raw_body = body_text(body)
    if ts is None:
        if isinstance(received_at, datetime):
            ts = int(received_at.timestamp()) - 3
        else:
            ts = TS0
    if received_at is None:
        base = int(ts) if isinstance(ts, int) or str(ts).isdigit() else TS0
        received_at = datetime.fromtimestamp(base, UTC) + timedelta(milliseconds=3120)
    if isinstance(received_at, datetime):
        received_at = iso(received_at)
    if webhook_id is None:
        webhook_id = "msg_" + hashlib.sha256(f"{raw_body}|{ts}".encode()).hexdigest()[:24]
    if signature is None:
        secrets = [sign_with] if isinstance(sign_with, str) else list(sign_with or [secret])
        signature = " ".join(sign(s, webhook_id, ts, raw_body) for s in secrets)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    headers = overridden(headers, headers_override or {})
    envelope = {
        "received_at": received_at,
        "tenant_id": tenant,
        "provider": provider,
        "headers": headers,
        "body": raw_body,
    }
    envelope = overridden(envelope, envelope_override or {})
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------- running ---

Lines = Sequence[str | bytes]


def _as_bytes(lines: Lines) -> bytes:
    return b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)


def write_landing(root: Path, files: Mapping[str, Lines] | Lines, *, name: str = "callbacks.jsonl") -> Path:
    """Write callback files under ``root/landing/callbacks`` and return the landing folder."""
    landing_dir = root / "landing"
    folder = landing_dir / "callbacks"
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(files, Mapping):
        files = {name: files}
    for file_name, lines in files.items():
        (folder / file_name).write_bytes(_as_bytes(lines))
    return landing_dir


def write_secrets(root: Path, secrets: Mapping | None = None) -> Path:
    path = root / "secrets.json"
    path.write_text(json.dumps(DEFAULT_SECRETS if secrets is None else secrets), "utf-8")
    return path


def ingest(home: Path, landing_dir: Path, secrets_path: Path) -> tuple[ArchiveResult, int, pl.DataFrame]:
    """archive_landing + verify_new_callbacks on the warehouse in ``home``.

    Returns (archive result, lines verified now, every row of callback_checked).
    """
    with Warehouse(home).connect() as con:
        archived = archive_landing(con, landing_dir)
        verified = verify_new_callbacks(con, load_webhook_keys(secrets_path))
        checked = con.sql("SELECT * FROM callback_checked ORDER BY source_file, line_no, file_sha256").pl()
    return archived, verified, checked


def run_lines(
    tmp_path: Path,
    lines: Mapping[str, Lines] | Lines,
    secrets: Mapping | None = None,
) -> tuple[pl.DataFrame, Convergence]:
    """Land ``lines`` (one file, or {file name: lines}), verify them, converge.

    Uses a real DuckDB file in ``tmp_path/home``; returns (callback_checked, Convergence).
    """
    landing_dir = write_landing(tmp_path, lines)
    secrets_path = write_secrets(tmp_path, secrets)
    _, _, checked = ingest(tmp_path / "home", landing_dir, secrets_path)
    return checked, converge(checked)


def codes(checked: pl.DataFrame) -> list[str | None]:
    """error_code per line, in file/line order."""
    return checked.sort("source_file", "line_no")["error_code"].to_list()
