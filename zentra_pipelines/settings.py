"""Where a run reads and writes, resolved once per run (never at import time).

Precedence: explicit value (CLI flag or Dagster resource config) → ``ZENTRA_*``
environment variable → the bundled sandbox sample under ``data/sample``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zentra_pipelines.adapters.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "data" / "sample"

ENV = {
    "landing": "ZENTRA_LANDING",
    "source_db": "ZENTRA_SOURCE_DB",
    "policies": "ZENTRA_POLICIES",
    "secrets": "ZENTRA_SECRETS",
    "home": "ZENTRA_HOME",
}
DEFAULTS = {
    "landing": str(SAMPLE / "landing"),
    "source_db": f"sqlite:///{SAMPLE / 'source.sqlite'}",
    "policies": str(SAMPLE / "policies.yaml"),
    "secrets": str(SAMPLE / "secrets.json"),
    "home": str(REPO_ROOT / "var" / "home"),
}


@dataclass(frozen=True)
class Settings:
    landing: Path
    source_db: str
    policies: Path
    secrets: Path
    home: Path
    signing_key: str | None = None

    @classmethod
    def resolve(cls, explicit: Mapping[str, str | None], env: Mapping[str, str]) -> Settings:
        values = {k: (explicit.get(k) or env.get(ENV[k]) or DEFAULTS[k]) for k in ENV}
        return cls(
            landing=Path(values["landing"]).expanduser().resolve(),
            source_db=normalise_db_url(values["source_db"]),
            policies=Path(values["policies"]).expanduser().resolve(),
            secrets=Path(values["secrets"]).expanduser().resolve(),
            home=Path(values["home"]).expanduser().resolve(),
            signing_key=explicit.get("signing_key") or env.get("ZENTRA_SIGNING_KEY") or None,
        )

    def check(self) -> None:
        """Bad usage is reported before any work starts (exit 2), in one line."""
        if not self.landing.is_dir():
            raise ConfigError(f"landing folder not found: {self.landing}")
        for label, path in (("policies", self.policies), ("secrets", self.secrets)):
            if not path.is_file():
                raise ConfigError(f"{label} file not found: {path}")
        if self.source_db.startswith("sqlite:///"):
            db = Path(self.source_db[len("sqlite:///"):])
            if not db.is_file():
                raise ConfigError(f"source database not found: {db}")
        if self.signing_key and not Path(self.signing_key).is_file():
            raise ConfigError(f"ZENTRA_SIGNING_KEY points to a missing file: {self.signing_key}")
        self._check_home()

    def _check_home(self) -> None:
        """The home is a writable folder, or can be made as one (nothing is created here)."""
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(f"home is not a folder: {self.home}")
        nearest = next(p for p in (self.home, *self.home.parents) if p.exists())
        if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
            what = "home folder is not writable" if nearest == self.home else "home cannot be created under"
            raise ConfigError(f"{what}: {nearest}")

    def preflight(self) -> None:
        """Everything a run needs, checked before any work: :meth:`check`, the policies and
        secrets loaded, the signing key parsed (when one is configured), the source
        database's tables and columns. Raises ``ConfigError``, ``SigningKeyError`` or
        ``LedgerSourceError``, each one line naming what is wrong (exit 2)."""
        from zentra_pipelines.adapters.config import load_policies, load_webhook_keys
        from zentra_pipelines.adapters.ledger_source import check_source
        from zentra_pipelines.adapters.signing import load_signer

        self.check()
        load_policies(self.policies)
        load_webhook_keys(self.secrets)
        if self.signing_key:  # unset: the development key, made under the home when first sealing
            load_signer(self.home, self.signing_key)
        check_source(self.source_db)

    def public(self) -> dict[str, str]:
        """Safe to log and to seal: paths only, a database URL without its password."""
        return {
            "landing": str(self.landing),
            "source_db": redact_url(self.source_db),
            "policies": str(self.policies),
            "secrets": str(self.secrets),
            "home": str(self.home),
        }


def normalise_db_url(value: str) -> str:
    """A bare path means a SQLite file; URLs pass through."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def redact_url(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
