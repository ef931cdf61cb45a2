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
from zentra_pipelines.domain.dedupe import accept_changes
from zentra_pipelines.domain.intents import KEY, accept_intents


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
    from (``stage_inputs``). When they are those plus the lines of the files parsed now,
    only the intents those lines name are accepted again (``_publish_intent_changes``)."""
    new_files = intake.unparsed_files(con, "intents", "parse_intents")
    cache = intake.refresh_cache(con, "intents", "parse_intents", "intent_lines")
    parts = [intake.parser_version("parse_intents")]
    inputs = stage_inputs.digest(con, cache, parts)
    if stage_inputs.unchanged(con, INTENT_INPUTS, inputs, INTENT_TABLES):
        return _published_intent_report(con, cache)
    if stage_inputs.built_without(con, INTENT_INPUTS, cache, parts, new_files, INTENT_TABLES):
        _publish_intent_changes(con, cache, new_files, inputs)
        return _published_intent_report(con, cache)
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


def _publish_intent_changes(con: duckdb.DuckDBPyConnection, cache: str, new_files: list[str], inputs: str) -> None:
    """Publish the intents of every parsed line from the published ones, built on every
    line but those of ``new_files``: the intents those lines name are accepted again
    (``dedupe.accept_changes``) and replace their rows in place; the quarantine (small)
    is rewritten whole, in a full build's order.

    Why: at 100k intents over 30 days a day's run accepted all ~98k lines again and
    rewrote the 97k-row table for the ~3k intents it added. The table is then a set whose
    physical order is the order of its updates: its readers sort, or group by intent.
    """
    lines = intake.changed_lines(con, cache, KEY, new_files)
    intents, quarantine, redone = accept_changes(accept_intents, lines, Warehouse.read(con, "intents_quarantine"), KEY)
    update = Warehouse.replacement(con, "intents", redone, intents)
    con.register("_redone_intents", redone)
    try:
        (replaced_copies,) = con.sql(
            "SELECT coalesce(sum(copies), 0) FROM intents SEMI JOIN _redone_intents USING (tenant_id, intent_id)"
        ).fetchall()[0]
    finally:
        con.unregister("_redone_intents")
    (published_copies,) = con.sql("SELECT coalesce(sum(copies), 0) FROM intents").fetchall()[0]
    accepted_lines = int(published_copies) - int(replaced_copies) + int(intents["copies"].sum())
    (received,) = con.sql(f'SELECT count(*) FROM "{cache}"').fetchall()[0]
    Warehouse.publish(
        con,
        {"intents_quarantine": quarantine, INTENT_INPUTS: stage_inputs.frame(inputs)},
        audit=lambda f: rows_conserved_violations(received, accepted_lines, f["intents_quarantine"].height, "intents"),
        allow_empty={"intents_quarantine"},
        in_place={"intents": update},
    )


def _published_intent_report(con: duckdb.DuckDBPyConnection, cache: str) -> IntentReport:
    """The report of the published intent tables, read from them."""
    (received,) = con.sql(f'SELECT count(*) FROM "{cache}"').fetchall()[0]
    count, copies = con.sql("SELECT count(*), coalesce(sum(copies), 0) FROM intents").fetchall()[0]
    quarantine = Warehouse.read(con, "intents_quarantine")
    return IntentReport(received=received, accepted_lines=int(copies), intents=count,
                        quarantined=quarantine.height, quarantined_by_code=count_by(quarantine, "error_code"))


def run_controls(con: duckdb.DuckDBPyConnection, policies_path: Path) -> ControlReport:
    policies = load_policies(policies_path)
    intents = con.sql("SELECT * FROM intents").pl()
    decisions = policy.decide(intents, policies)
    reviews = policy.review_queue(decisions)
    update = Warehouse.changes(con, "policy_decisions", decisions, list(KEY))
    Warehouse.publish(
        con,
        {"policy_decisions": decisions, "review_queue": reviews},
        in_place={"policy_decisions": update} if update else None,
        audit=lambda f: [] if f["policy_decisions"].height == intents.height
        else [f"{intents.height} intents but {f['policy_decisions'].height} decisions"],
        allow_empty={"review_queue"} | ({"policy_decisions"} if intents.height == 0 else set()),
    )
    return ControlReport(
        decisions=count_by(decisions, "outcome"),
        open_reviews=count_by(reviews, "tenant_id"),
        policy_versions=dict(sorted(decisions.select("tenant_id", "policy_version").unique().iter_rows())),
    )

