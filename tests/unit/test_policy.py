"""The policy engine on tiny hand-built intents: one decision per intent, review owned by
a reviewer, and a policy version that changes only when a decision could."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines.domain import policy as pc

POLICY = {"max_amount_minor": {"EUR": 1_000}, "daily_limit_minor": {"EUR": 1_500},
          "allowed_corridors": ["EUR:SEPA:EUR"], "reviewers": ["op_anna", "op_ben"]}


def _intents(*rows: tuple[str, str, int, str, int]) -> pl.DataFrame:
    """(tenant_id, intent_id, amount_minor, corridor, hour of 2026-11-20)."""
    return pl.DataFrame(
        [(t, i, "scope_a", "actor_a", datetime(2026, 11, 20, h), a, "EUR", c) for t, i, a, c, h in rows],
        schema={"tenant_id": pl.String, "intent_id": pl.String, "scope": pl.String, "actor_id": pl.String,
                "created_at": pl.Datetime("us"), "amount_minor": pl.Int64, "currency": pl.String,
                "corridor": pl.String},
        orient="row",
    )


INTENTS = _intents(
    ("t_a", "i1", 900, "EUR:SEPA:EUR", 1),   # fits: accepted, 600 of the day left
    ("t_a", "i2", 1_001, "EUR:SEPA:EUR", 2),  # over the per-intent maximum
    ("t_a", "i3", 700, "EUR:SEPA:EUR", 3),   # 900 + 700 > 1,500: over the daily limit
    ("t_a", "i4", 600, "EUR:SEPA:EUR", 4),   # still fits the day: accepted
    ("t_a", "i5", 10, "EUR:CARD:EUR", 5),    # corridor not allowed
    ("t_a", "i6", 0, "EUR:SEPA:EUR", 6),     # amount not positive
    ("t_z", "i7", 10, "EUR:SEPA:EUR", 7),    # no policy for the tenant
)


def test_each_rule_gives_its_outcome_and_reason():
    decided = pc.decide(INTENTS, {"tenants": {"t_a": POLICY}})
    assert decided.select("intent_id", "outcome", "reason", "limit_minor").rows() == [
        ("i1", "accepted", "within_policy", None),
        ("i2", "review", "over_max_amount", 1_000),
        ("i3", "review", "over_daily_limit", 1_500),
        ("i4", "accepted", "within_policy", None),
        ("i5", "rejected", "corridor_not_allowed", None),
        ("i6", "rejected", "amount_not_positive", None),
        ("i7", "rejected", "no_policy", None),
    ]


def test_every_review_has_a_reviewer_as_owner_and_nothing_else_has_one():
    decided = pc.decide(INTENTS, {"tenants": {"t_a": POLICY}})
    owners = dict(decided.select("intent_id", "owner").rows())
    assert {owners["i2"], owners["i3"]} <= {"op_anna", "op_ben"}
    assert [owners[i] for i in ("i1", "i4", "i5", "i6", "i7")] == [None] * 5


def test_the_vectorised_engine_matches_the_reference_loop():
    policies = {"tenants": {"t_a": POLICY}}
    assert_frame_equal(pc.decide(INTENTS, policies), pc.decide_reference(INTENTS, policies))


def test_listing_corridors_or_reviewers_in_another_order_or_twice_is_the_same_policy():
    reordered = {**POLICY, "allowed_corridors": ["EUR:SEPA:EUR", "EUR:SEPA:EUR"],
                 "reviewers": ["op_ben", "op_anna", "op_ben"]}
    assert pc.policy_version(reordered) == pc.policy_version(POLICY)
    assert_frame_equal(pc.decide(INTENTS, {"tenants": {"t_a": reordered}}),
                       pc.decide(INTENTS, {"tenants": {"t_a": POLICY}}))


def test_a_changed_limit_is_a_new_policy_version():
    tighter = {**POLICY, "daily_limit_minor": {"EUR": 1_400}}
    assert pc.policy_version(tighter) != pc.policy_version(POLICY)


def test_a_reviewer_listed_twice_gets_no_double_share():
    for intent_id in (f"i{n}" for n in range(50)):
        assert pc.assign_reviewer(["b", "a", "a", "a"], "t_a", intent_id) == pc.assign_reviewer(["a", "b"], "t_a",
                                                                                               intent_id)


def test_a_review_is_never_owned_by_the_intents_own_maker():
    """Four eyes: the actor who made the intent is left out of its reviewers; alone, no owner."""
    owners = {pc.assign_reviewer(["usr_maker", "usr_b"], "t_a", f"in_{n}", "usr_maker") for n in range(40)}
    assert owners == {"usr_b"}
    assert pc.assign_reviewer(["usr_maker"], "t_a", "in_1", "usr_maker") is None


def test_the_review_queue_keeps_the_contract_columns_first_and_the_intents_actor():
    queue = pc.review_queue(pc.decide(INTENTS, {"tenants": {"t_a": POLICY}}))
    assert queue.columns[:6] == ["tenant_id", "intent_id", "reason", "owner", "policy_version", "actor_id"]
    assert queue.select("intent_id", "actor_id").rows() == [("i2", "actor_a"), ("i3", "actor_a")]
