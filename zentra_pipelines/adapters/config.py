"""Configuration files: webhook secrets (JSON) and tenant policies (YAML).

Both are read once per run and validated up front: a bad file is bad usage (exit 2),
reported with its path and the offending key, never with a secret's value.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

from zentra_pipelines.domain.money import is_identifier
from zentra_pipelines.domain.webhooks import SecretFormatError, decode_secret, hmac_pads


class ConfigError(ValueError):
    """Configuration is unusable; the message is safe to print."""


def load_webhook_keys(path: Path) -> pl.DataFrame:
    """secrets.json -> (tenant_id, provider, secret_index, ikey, okey); no secret text kept."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"secrets file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"secrets file {path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"secrets file {path}: top level must be an object of tenants")
    rows = []
    for tenant_id, providers in sorted(doc.items()):
        if not is_identifier(tenant_id) or not isinstance(providers, dict):
            raise ConfigError(f"secrets file {path}: bad tenant entry {tenant_id!r}")
        for provider, secrets in sorted(providers.items()):
            if not is_identifier(provider) or not isinstance(secrets, list) or not secrets:
                raise ConfigError(f"secrets file {path}: {tenant_id}/{provider!r} needs a list of secrets")
            for index, secret in enumerate(secrets):
                try:
                    ikey, okey = hmac_pads(decode_secret(secret))
                except SecretFormatError as exc:
                    raise ConfigError(f"secrets file {path}: {tenant_id}/{provider} secret #{index}: {exc}") from None
                rows.append((tenant_id, provider, index, ikey, okey))
    return pl.DataFrame(
        rows,
        schema={"tenant_id": pl.String, "provider": pl.String, "secret_index": pl.Int64,
                "ikey": pl.Binary, "okey": pl.Binary},
        orient="row",
    )


def load_policies(path: Path) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policies file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"policies file {path} is not valid YAML ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tenants"), dict):
        raise ConfigError(f"policies file {path}: expected a mapping with a 'tenants' mapping")
    return doc
