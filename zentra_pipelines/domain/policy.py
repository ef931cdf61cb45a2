"""Controls: every accepted intent gets one decision before anything is posted.

A decision is evidence, so it is a row: who asked (actor), for whom (tenant, scope),
when (decided_at comes from the intent's own created_at, never the clock), what was
decided and why, and under which policy (a hash of the tenant's effective policy).
Over-limit intents move to review and are owned by one named reviewer, chosen by a
hash so the same intent always lands with the same person.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping

import polars as pl

ACCEPTED, REVIEW, REJECTED = "accepted", "review", "rejected"

# reason codes (stable, shown to finance and sealed into evidence)
WITHIN_POLICY = "within_policy"
NO_POLICY = "no_policy"
CORRIDOR_NOT_ALLOWED = "corridor_not_allowed"
AMOUNT_NOT_POSITIVE = "amount_not_positive"
NO_LIMIT_CONFIGURED = "no_limit_configured"
OVER_MAX_AMOUNT = "over_max_amount"
OVER_DAILY_LIMIT = "over_daily_limit"

DECISION_SCHEMA = {
    "tenant_id": pl.String, "intent_id": pl.String, "scope": pl.String, "actor_id": pl.String,
    "decided_at": pl.Datetime("us"), "outcome": pl.String, "reason": pl.String,
    "policy_version": pl.String, "owner": pl.String, "amount_minor": pl.Int64, "currency": pl.String,
    "limit_minor": pl.Int64, "service": pl.String,
}


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def policy_version(tenant_policy: Mapping | None) -> str:
    """A short, stable fingerprint of one tenant's effective policy."""
    return "sha256:" + hashlib.sha256(canonical_json(tenant_policy or {})).hexdigest()[:16]


def assign_reviewer(reviewers: list[str], tenant_id: str, intent_id: str) -> str | None:
    if not reviewers:
        return None
    ordered = sorted(reviewers)
    digest = hashlib.sha256(f"{tenant_id}|{intent_id}".encode()).digest()
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


def decide(intents: pl.DataFrame, policies: Mapping) -> pl.DataFrame:
    """One decision per intent. Rules in order: policy exists, corridor allowed, amount
    positive, per-intent maximum, then the tenant's daily limit per currency and UTC day,
    consumed in (created_at, intent_id) order by accepted intents only."""
    tenants = policies.get("tenants", {}) if isinstance(policies, Mapping) else {}
    used: dict[tuple[str, str, object], int] = defaultdict(int)
    rows = []
    ordered = intents.sort("tenant_id", "created_at", "intent_id")
    for it in ordered.iter_rows(named=True):
        tenant, currency, amount = it["tenant_id"], it["currency"], it["amount_minor"]
        policy = tenants.get(tenant)
        version = policy_version(policy)
        outcome, reason, limit = ACCEPTED, WITHIN_POLICY, None
        if not isinstance(policy, Mapping):
            outcome, reason = REJECTED, NO_POLICY
        elif it["corridor"] not in (policy.get("allowed_corridors") or []):
            outcome, reason = REJECTED, CORRIDOR_NOT_ALLOWED
        elif amount <= 0:
            outcome, reason = REJECTED, AMOUNT_NOT_POSITIVE
        else:
            maximum = (policy.get("max_amount_minor") or {}).get(currency)
            daily = (policy.get("daily_limit_minor") or {}).get(currency)
            day_key = (tenant, currency, it["created_at"].date())
            if type(maximum) is not int or type(daily) is not int:
                outcome, reason = REVIEW, NO_LIMIT_CONFIGURED
            elif amount > maximum:
                outcome, reason, limit = REVIEW, OVER_MAX_AMOUNT, maximum
            elif used[day_key] + amount > daily:
                outcome, reason, limit = REVIEW, OVER_DAILY_LIMIT, daily
            else:
                used[day_key] += amount
        owner = None
        if outcome == REVIEW:
            owner = assign_reviewer(list((policy or {}).get("reviewers") or []), tenant, it["intent_id"])
        rows.append((
            tenant, it["intent_id"], it["scope"], it["actor_id"], it["created_at"], outcome, reason,
            version, owner, amount, currency, limit, "svc_policy",
        ))
    return pl.DataFrame(rows, schema=DECISION_SCHEMA, orient="row").sort("tenant_id", "intent_id")


def review_queue(decisions: pl.DataFrame) -> pl.DataFrame:
    """Open reviews: the contract's columns first, then what an operator needs."""
    return (
        decisions.filter(pl.col("outcome") == REVIEW)
        .select(
            "tenant_id", "intent_id", "reason", "owner", "policy_version",
            "amount_minor", "currency", "limit_minor",
            pl.col("decided_at").alias("opened_at"),
            pl.lit("open").alias("status"),
        )
        .sort("tenant_id", "intent_id")
    )
