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

from zentra_pipelines.domain.money import is_amount

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


#: Policy keys read as sets: their order and repeats change no decision.
SET_KEYS = ("allowed_corridors", "reviewers")


def policy_version(tenant_policy: Mapping | None) -> str:
    """A short, stable fingerprint of one tenant's effective policy.

    Effective: corridors and reviewers are sets to the engine (a reviewer is picked from
    the sorted list), so listing them in another order or twice is the same policy and
    the same version; an auditor comparing versions across days sees a change only when
    a decision could change."""
    policy = dict(tenant_policy or {})
    for key in SET_KEYS:
        values = policy.get(key)
        if isinstance(values, list) and all(isinstance(v, str) for v in values):
            policy[key] = sorted(set(values))
    return "sha256:" + hashlib.sha256(canonical_json(policy)).hexdigest()[:16]


def assign_reviewer(reviewers: list[str], tenant_id: str, intent_id: str, actor_id: str | None = None) -> str | None:
    """The reviewer who owns an intent's review, the same on every run. Never its own
    maker (four eyes): the intent's actor is left out, and a tenant whose only reviewer
    made the intent leaves the review without an owner (the summary counts those)."""
    ordered = sorted(set(reviewers) - {actor_id})  # a reviewer listed twice gets no double share
    if not ordered:
        return None
    digest = hashlib.sha256(f"{tenant_id}|{intent_id}".encode()).digest()
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


def decide(intents: pl.DataFrame, policies: Mapping) -> pl.DataFrame:
    """One decision per intent. Rules in order: policy exists, corridor allowed, amount
    positive, per-intent maximum, then the tenant's daily limit per currency and UTC day,
    consumed in (created_at, intent_id) order by accepted intents only.

    Vectorised (``_decide_frame``) whenever every policy has the documented shape;
    otherwise, and as the specification, the row-by-row ``decide_reference``.
    """
    tenants = policies.get("tenants", {}) if isinstance(policies, Mapping) else {}
    table = _policy_tables(tenants)
    if table is None or intents.select(
        pl.any_horizontal(pl.col("tenant_id", "intent_id", "corridor", "amount_minor", "currency", "created_at")
                          .is_null().any())
    ).item():
        return decide_reference(intents, policies)
    return _decide_frame(intents, *table)


def _policy_tables(tenants: Mapping) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None:
    """(per tenant, per tenant+corridor, per tenant+currency limits), or None for a shape
    only the reference loop reads faithfully (a non-list corridor set, a limit table that
    is not a mapping, a limit beyond 64 bits...)."""
    rows, corridors, limits = [], [], []
    for tenant, policy in tenants.items():
        if not isinstance(tenant, str):
            continue  # never equal to a tenant_id (text)
        if not isinstance(policy, Mapping):
            rows.append((tenant, False, policy_version(policy), []))
            continue
        allowed = policy.get("allowed_corridors") or []
        maxima = policy.get("max_amount_minor") or {}
        daily = policy.get("daily_limit_minor") or {}
        reviewers = policy.get("reviewers") or []
        if not isinstance(allowed, (list, tuple)) or not all(isinstance(c, str) for c in allowed):
            return None
        if not isinstance(maxima, Mapping) or not isinstance(daily, Mapping):
            return None
        if not isinstance(reviewers, (list, tuple)) or not all(isinstance(r, str) for r in reviewers):
            return None
        rows.append((tenant, True, policy_version(policy), sorted(reviewers)))
        corridors += [(tenant, c) for c in set(allowed)]
        for currency in set(maxima) | set(daily):
            if not isinstance(currency, str):
                continue
            m, d = maxima.get(currency), daily.get(currency)
            m = m if type(m) is int else None
            d = d if type(d) is int else None
            if any(v is not None and not is_amount(v) for v in (m, d)):
                return None
            limits.append((tenant, currency, m, d))
    per_tenant = pl.DataFrame(rows, schema={"tenant_id": pl.String, "_has_policy": pl.Boolean,
                                            "policy_version": pl.String, "_reviewers": pl.List(pl.String)},
                              orient="row")
    allowed_frame = pl.DataFrame(corridors, schema={"tenant_id": pl.String, "corridor": pl.String}, orient="row")
    limit_frame = pl.DataFrame(limits, schema={"tenant_id": pl.String, "currency": pl.String,
                                               "_max": pl.Int64, "_daily": pl.Int64}, orient="row")
    return per_tenant, allowed_frame, limit_frame


def _decide_frame(intents: pl.DataFrame, per_tenant: pl.DataFrame, allowed: pl.DataFrame,
                  limits: pl.DataFrame) -> pl.DataFrame:
    key = ["tenant_id", "intent_id"]
    frame = (
        intents.select("tenant_id", "intent_id", "scope", "actor_id", "created_at", "amount_minor", "currency",
                       "corridor")
        .join(per_tenant, on="tenant_id", how="left")
        .join(allowed.with_columns(_allowed=pl.lit(True)), on=["tenant_id", "corridor"], how="left")
        .join(limits, on=["tenant_id", "currency"], how="left")
        .with_columns(
            pl.col("_has_policy").fill_null(False),
            pl.col("_allowed").fill_null(False),
            pl.col("policy_version").fill_null(policy_version(None)),
        )
    )
    amount = pl.col("amount_minor")
    rejected_reason = (
        pl.when(~pl.col("_has_policy")).then(pl.lit(NO_POLICY))
        .when(~pl.col("_allowed")).then(pl.lit(CORRIDOR_NOT_ALLOWED))
        .when(amount <= 0).then(pl.lit(AMOUNT_NOT_POSITIVE))
    )
    review_reason = (
        pl.when(pl.col("_max").is_null() | pl.col("_daily").is_null()).then(pl.lit(NO_LIMIT_CONFIGURED))
        .when(amount > pl.col("_max")).then(pl.lit(OVER_MAX_AMOUNT))
    )
    frame = frame.with_columns(_rejected=rejected_reason).with_columns(
        _review=pl.when(pl.col("_rejected").is_null()).then(review_reason),
        _day=pl.col("created_at").dt.date(),
    )
    # The daily limit is consumed in (created_at, intent_id) order by accepted intents only.
    # A (tenant, currency, day) whose candidates all fit together needs no sequence: all
    # are accepted. Only the days that overflow replay the greedy rule, row by row.
    candidates = pl.col("_rejected").is_null() & pl.col("_review").is_null()
    day_key = ["tenant_id", "currency", "_day"]
    frame = frame.with_columns(
        _candidate=candidates,
        _overflow=(amount.cast(pl.Int128).filter(candidates).sum().over(day_key) > pl.col("_daily").cast(pl.Int128))
        .fill_null(False),
    )
    over_daily: set[tuple[str, str]] = set()
    replay = frame.filter(pl.col("_candidate") & pl.col("_overflow")).sort("tenant_id", "created_at", "intent_id")
    used: dict[tuple, int] = defaultdict(int)
    for tenant, intent_id, currency, day, amount_v, daily in replay.select(
        "tenant_id", "intent_id", "currency", "_day", "amount_minor", "_daily"
    ).iter_rows():
        k = (tenant, currency, day)
        if used[k] + amount_v > daily:
            over_daily.add((tenant, intent_id))
        else:
            used[k] += amount_v
    if over_daily:
        flagged = pl.DataFrame(sorted(over_daily), schema={"tenant_id": pl.String, "intent_id": pl.String},
                               orient="row").with_columns(_over_daily=pl.lit(True))
        frame = frame.join(flagged, on=key, how="left")
    else:
        frame = frame.with_columns(_over_daily=pl.lit(None, pl.Boolean))
    frame = frame.with_columns(
        _review=pl.when(pl.col("_over_daily").fill_null(False)).then(pl.lit(OVER_DAILY_LIMIT)).otherwise("_review")
    )
    outcome = (
        pl.when(pl.col("_rejected").is_not_null()).then(pl.lit(REJECTED))
        .when(pl.col("_review").is_not_null()).then(pl.lit(REVIEW))
        .otherwise(pl.lit(ACCEPTED))
    )
    limit = (
        pl.when(pl.col("_review") == OVER_MAX_AMOUNT).then(pl.col("_max"))
        .when(pl.col("_review") == OVER_DAILY_LIMIT).then(pl.col("_daily"))
    )
    decided = frame.with_columns(
        outcome=outcome,
        reason=pl.coalesce("_rejected", "_review", pl.lit(WITHIN_POLICY)),
        limit_minor=limit,
    )
    reviews = decided.filter(pl.col("outcome") == REVIEW).select("tenant_id", "intent_id", "_reviewers", "actor_id")
    owners = pl.DataFrame(
        [(t, i, assign_reviewer(list(r or []), t, i, a)) for t, i, r, a in reviews.iter_rows()],
        schema={"tenant_id": pl.String, "intent_id": pl.String, "owner": pl.String}, orient="row",
    )
    return (
        decided.join(owners, on=key, how="left")
        .select(
            "tenant_id", "intent_id", "scope", "actor_id", pl.col("created_at").alias("decided_at"), "outcome",
            "reason", "policy_version", "owner", "amount_minor", "currency", "limit_minor",
            pl.lit("svc_policy").alias("service"),
        )
        .cast(DECISION_SCHEMA)
        .sort("tenant_id", "intent_id")
    )


def decide_reference(intents: pl.DataFrame, policies: Mapping) -> pl.DataFrame:
    """The rules, row by row: the specification ``decide`` is checked against."""
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
            owner = assign_reviewer(list((policy or {}).get("reviewers") or []), tenant, it["intent_id"],
                                    it["actor_id"])
        rows.append((
            tenant, it["intent_id"], it["scope"], it["actor_id"], it["created_at"], outcome, reason,
            version, owner, amount, currency, limit, "svc_policy",
        ))
    return pl.DataFrame(rows, schema=DECISION_SCHEMA, orient="row").sort("tenant_id", "intent_id")


def review_queue(decisions: pl.DataFrame) -> pl.DataFrame:
    """Open reviews: the contract's columns first, then what an operator needs (the
    actor who made the intent stays attached to its review, as the product page says)."""
    return (
        decisions.filter(pl.col("outcome") == REVIEW)
        .select(
            "tenant_id", "intent_id", "reason", "owner", "policy_version",
            "actor_id", "amount_minor", "currency", "limit_minor",
            pl.col("decided_at").alias("opened_at"),
            pl.lit("open").alias("status"),
        )
        .sort("tenant_id", "intent_id")
    )
