"""Configuration files: webhook secrets (JSON) and tenant policies (YAML).

Both are read once per run and validated up front: a bad file is bad usage (exit 2),
reported with its path and the offending key, never with a secret's value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import yaml

from zentra_pipelines.domain.money import INT64_MAX, is_amount, is_currency, is_identifier
from zentra_pipelines.domain.webhooks import SECRET_PREFIX, SecretFormatError, decode_secret, hmac_pads


class ConfigError(ValueError):
    """Configuration is unusable; the message is safe to print."""


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are all different: with a key twice, json keeps the last
    value in silence (a rotated secret list would drop the other one)."""
    doc: dict[str, object] = {}
    for key, value in pairs:
        if key in doc:
            raise _DuplicateKey(key)
        doc[key] = value
    return doc


def _name(key: str) -> str:
    """A secrets-file key as an error message may show it: an identifier that is not a
    secret; anything else (a secret pasted where a name belongs) is not echoed."""
    if is_identifier(key) and not key.startswith(SECRET_PREFIX):
        return repr(key)
    return f"<a key of {len(key)} characters, not shown: not an identifier, or a secret>"


def _shown(value: object) -> str:
    """A configuration value as an error message may show it: numbers, booleans, null and
    short texts that hold no secret; other text is described, not echoed (a webhook secret
    pasted into the policies file must not reach a terminal or a CI log)."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str) and len(value) <= 32 and SECRET_PREFIX not in value and value.isprintable():
        return repr(value)
    if isinstance(value, str):
        return f"<a text of {len(value)} characters, not shown>"
    return f"<a {type(value).__name__}>"


def load_webhook_keys(path: Path) -> pl.DataFrame:
    """secrets.json -> (tenant_id, provider, secret_index, ikey, okey); no secret text kept."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise ConfigError(f"secrets file not found: {path}") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"secrets file {path}: key {_name(exc.key)} appears twice in one object "
                          "(JSON would keep only the last)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"secrets file {path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"secrets file {path}: top level must be an object of tenants")
    rows = []
    for tenant_id, providers in sorted(doc.items()):
        if not is_identifier(tenant_id) or tenant_id.startswith(SECRET_PREFIX) or not isinstance(providers, dict):
            raise ConfigError(f"secrets file {path}: bad tenant entry {_name(tenant_id)}")
        for provider, secrets in sorted(providers.items()):
            if (not is_identifier(provider) or provider.startswith(SECRET_PREFIX)
                    or not isinstance(secrets, list) or not secrets):
                raise ConfigError(f"secrets file {path}: {tenant_id}/{_name(provider)} needs a list of secrets")
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


_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_INT_TAG = "tag:yaml.org,2002:int"


class _PolicyLoader(yaml.SafeLoader):
    """YAML as a finance team reads it. PyYAML speaks YAML 1.1, where ``0250`` is octal
    168, ``4:10`` is 250 (base 60) and ``5_000_000`` an integer, and where a key written
    twice keeps its last value in silence: each would set a limit other than the one
    written. Here an integer is plain decimal digits, anything else stays text (and the
    limit check refuses it), and a repeated key is an error."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if not _PLAIN_INT.fullmatch(text):
            raise yaml.constructor.ConstructorError(None, None, "an integer must be plain decimal digits",
                                                    node.start_mark)
        return int(text)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            # a merge key (<<: *defaults) is not a key: its entries are overridden by the
            # mapping's own keys, as YAML says and as written
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise _DuplicateKey(key)
                seen.add(key)
        return super().construct_mapping(node, deep)


_PolicyLoader.add_implicit_resolver(_INT_TAG, re.compile(f"^{_PLAIN_INT.pattern}$"), list("-+0123456789"))
_PolicyLoader.add_constructor(_INT_TAG, _PolicyLoader.construct_yaml_int)


def load_policies(path: Path) -> dict:
    try:
        doc = yaml.load(Path(path).read_text("utf-8"), Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"policies file not found: {path}") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"policies file {path}: key {_name(str(exc.key))} appears twice in one mapping "
                          "(YAML would keep only the last)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"policies file {path} is not valid YAML ({type(exc).__name__})") from None
    if isinstance(doc, dict) and "tenants" not in doc:
        doc = _tenants_at_top(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("tenants"), dict):
        raise ConfigError(f"policies file {path}: expected a mapping with a 'tenants' mapping")
    problem = policies_problem(doc)
    if problem:
        raise ConfigError(f"policies file {path}: {problem}")
    return doc


def _tenants_at_top(doc: dict) -> dict:
    """A policies file written like the secrets file, tenants at the top level
    (``t_alpha: {max_amount_minor: ...}``), read as ``{tenants: {...}}``: the contract says
    "per tenant" and does not name the wrapper. Other top-level keys keep their meaning."""
    reserved = {k: v for k, v in doc.items() if _is_top_key(k)}
    return {**reserved, "tenants": {k: v for k, v in doc.items() if k not in reserved}}


POLICY_FORMAT = 1
LIMIT_KEYS = ("max_amount_minor", "daily_limit_minor")
POLICY_KEYS = (*LIMIT_KEYS, "allowed_corridors", "reviewers")
TOP_KEYS = ("policy_format", "tenants")


def _is_top_key(key: object) -> bool:
    """A known top-level key, or x-...: room for shared YAML anchors (x-defaults:
    &defaults), as in compose files."""
    return key in TOP_KEYS or str(key).startswith("x-")


def policies_problem(doc: dict) -> str | None:
    """The first thing wrong with a policies document, or None.

    A control must not weaken in silence: a limit written as ``5000000.5``, ``"5000000"``,
    ``true`` or under a misspelt key or currency was read as no limit at all for that
    currency, and the intents over it were accepted. So every limit is an integer in minor
    units between 0 and 2^63-1 under a known ISO currency, every key is one the policy
    engine reads, and tenants and reviewers are identifiers."""
    unknown_top = sorted(str(k) for k in doc if not _is_top_key(k))
    if unknown_top:
        return (f"unknown top-level key(s) {', '.join(_shown(k) for k in unknown_top)} "
                f"(known: {', '.join(TOP_KEYS)}, and x-... for shared YAML anchors)")
    if doc.get("policy_format", POLICY_FORMAT) != POLICY_FORMAT:
        return f"policy_format {_shown(doc.get('policy_format'))} is not supported (expected {POLICY_FORMAT})"
    for tenant, policy in doc["tenants"].items():
        if not is_identifier(tenant):
            return f"tenant {_shown(tenant)} is not an identifier"
        if not isinstance(policy, dict):
            return f"{tenant}: expected a mapping of {', '.join(POLICY_KEYS)}"
        unknown = sorted(k if is_identifier(k) and len(k) <= 32 and SECRET_PREFIX not in k else _shown(k)
                         for k in policy if k not in POLICY_KEYS)
        if unknown:
            return f"{tenant}: unknown key(s) {', '.join(unknown)} (known: {', '.join(POLICY_KEYS)})"
        for key in LIMIT_KEYS:
            limits = policy.get(key) or {}
            if not isinstance(limits, dict):
                return f"{tenant}.{key}: expected a mapping of currency to an integer amount in minor units"
            for currency, amount in limits.items():
                if not is_currency(currency):
                    return f"{tenant}.{key}: {_shown(currency)} is not an ISO 4217 currency code"
                if not is_amount(amount) or amount < 0:
                    return (f"{tenant}.{key}.{currency}: {_shown(amount)} is not an integer amount in minor units "
                            f"between 0 and {INT64_MAX}")
        corridors = policy.get("allowed_corridors") or []
        if not isinstance(corridors, list) or not all(isinstance(c, str) for c in corridors):
            return f"{tenant}.allowed_corridors: expected a list of corridors like EUR:SEPA:EUR"
        # absent or empty is allowed (a tenant whose intents never need review); its
        # reviews then have no owner, and the run summary names them
        reviewers = policy.get("reviewers") or []
        if not isinstance(reviewers, list) or not all(is_identifier(r) for r in reviewers):
            return f"{tenant}.reviewers: expected a list of operator identifiers"
    return None
