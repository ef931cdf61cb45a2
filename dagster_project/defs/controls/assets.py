"""Controlled: every intent decided by its tenant's policy before anything is posted."""

import dagster as dg

from dagster_project.defs.lifecycle import CONTROLLED, POOL, zentra_spec
from dagster_project.defs.metadata import md_counts
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import controls


@dg.multi_asset(
    specs=[
        zentra_spec(
            "policy_decisions",
            "controls",
            CONTROLLED,
            deps=["intents"],
            description="One decision per intent (accepted, review, rejected) with actor, tenant, scope, "
            "decided_at from the data, reason code and the policy version it was taken under.",
        ),
        zentra_spec(
            "review_queue",
            "controls",
            CONTROLLED,
            deps=["intents"],
            description="Over-limit intents held before posting, each owned by one of the tenant's reviewers.",
        ),
    ],
    pool=POOL,
)
def policy_controls(zentra: ZentraResource):
    with zentra.warehouse() as con:
        r = controls.run_controls(con, zentra.settings().policies)
    yield dg.MaterializeResult(
        asset_key="policy_decisions",
        metadata={
            "decisions": md_counts(r.decisions, "outcome", "intents"),
            "policy_versions": md_counts(r.policy_versions, "tenant", "version"),
        },
    )
    yield dg.MaterializeResult(
        asset_key="review_queue",
        metadata={
            "open_reviews": sum(r.open_reviews.values()),
            "open_reviews_by_tenant": md_counts(r.open_reviews, "tenant", "open"),
        },
    )
