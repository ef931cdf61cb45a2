"""Accepted → controlled: intents are parsed, deduplicated and decided by policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from zentra_pipelines import intake, stage_inputs
from zentra_pipelines.adapters.config import load_policies
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import policy
from zentra_pipelines.domain.accounting import count_by, rows_conserved_violations
from zentra_pipelines.domain.intents import accept_intents


@dataclass(frozen=True)
class IntentReport:
    received: int
    accepted_lines: int
    intents: int
    quarantined: int
    quarantined_by_code: dict[str, int]


@dataclass(frozen=True)
class ControlReport:
    decisions: dict[str, int]
    open_reviews: dict[str, int]
    policy_versions: dict[str, str]


#: Published with the intent tables: the digest of what they were built from.
INTENT_INPUTS = "intents_inputs"
INTENT_TABLES = ("intents", "intents_quarantine")


def run_intents(con: duckdb.DuckDBPyConnection) -> IntentReport:
    """Intent lines → intents and their quarantine; skipped (the report read from the
    published tables) when the parsed lines and the code are those the tables were built
    from (``stage_inputs``)."""
    cache = intake.refresh_cache(con, "intents", "parse_intents", "intent_lines")
    inputs = stage_inputs.digest(con, cache, [intake.parser_version("parse_intents")])
    if stage_inputs.unchanged(con, INTENT_INPUTS, inputs, INTENT_TABLES):
        (received,) = con.sql(f'SELECT count(*) FROM "{cache}"').fetchall()[0]
        count, copies = con.sql("SELECT count(*), coalesce(sum(copies), 0) FROM intents").fetchall()[0]
        quarantine = Warehouse.read(con, "intents_quarantine")
        return IntentReport(received=received, accepted_lines=int(copies), intents=count,
                            quarantined=quarantine.height, quarantined_by_code=count_by(quarantine, "error_code"))
    # any order: accept_intents keeps one of identical copies per key and sorts by key,
    # and its quarantine by line
    parsed = intake.read_cache(con, cache, None)
    intents, quarantine = accept_intents(parsed)
    accepted_lines = int(intents["copies"].sum()) if intents.height else 0
    Warehouse.publish(
        con,
        {"intents": intents, "intents_quarantine": quarantine, INTENT_INPUTS: stage_inputs.frame(inputs)},
        audit=lambda f: rows_conserved_violations(parsed.height, accepted_lines, f["intents_quarantine"].height, "intents"),
        # no intent at all is a result only when every line is accounted for in quarantine
        # (a log of malformed lines); otherwise it is a symptom and refused
        allow_empty={"intents_quarantine"} | ({"intents"} if quarantine.height == parsed.height else set()),
    )
    return IntentReport(
        received=parsed.height,
        accepted_lines=accepted_lines,
        intents=intents.height,
        quarantined=quarantine.height,
        quarantined_by_code=count_by(quarantine, "error_code"),
    )


def run_controls(con: duckdb.DuckDBPyConnection, policies_path: Path) -> ControlReport:
    policies = load_policies(policies_path)
    intents = con.sql("SELECT * FROM intents").pl()
    decisions = policy.decide(intents, policies)
    reviews = policy.review_queue(decisions)
    Warehouse.publish(
        con,
        {"policy_decisions": decisions, "review_queue": reviews},
        audit=lambda f: [] if f["policy_decisions"].height == intents.height
        else [f"{intents.height} intents but {f['policy_decisions'].height} decisions"],
        allow_empty={"review_queue"} | ({"policy_decisions"} if intents.height == 0 else set()),
    )
    return ControlReport(
        decisions=count_by(decisions, "outcome"),
        open_reviews=count_by(reviews, "tenant_id"),
        policy_versions=dict(sorted(decisions.select("tenant_id", "policy_version").unique().iter_rows())),
    )

