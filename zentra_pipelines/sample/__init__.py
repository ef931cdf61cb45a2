"""Sandbox scenario generator (``zentra sample``): realistic inputs with every failure rehearsed.

``generate_sample(out_dir, intents=200, seed=7)`` writes, under ``out_dir``::

    landing/intents/<YYYY-MM-DD>.jsonl, landing/intents/late-retries.jsonl
    landing/callbacks/<YYYY-MM-DD>.jsonl, landing/callbacks/late-redeliveries.jsonl
    landing/settlements/<provider>-<YYYY-MM-DD>.csv, landing/settlements/legacy-export.csv
    landing/deliveries/<YYYY-MM-DD>.jsonl
    source.sqlite      ledger_postings + accounts (the money core's ledger)
    policies.yaml      per-tenant limits, corridors, reviewers
    secrets.json       webhook secrets (t_alpha/acme_pay is mid-rotation: two secrets)
    expected.json      the planted cases, machine-readable (what a correct run must find)

Everything is a pure function of ``(intents, seed)``: a seeded ``random.Random``, a fixed
base date (2026-11-20 UTC), no clock, no environment, so two runs give byte-identical
files. Files are written streaming (bounded memory) so ``intents=1_000_000`` works.

``expected.json`` keys: ``breaks`` (tenant_id, intent_id, provider_ref, break_type and both
amounts), ``quarantine`` (source -> code -> rows), ``planted`` (every planted line with
its file, 1-based physical line number, expected code or ``null`` when it must be accepted
and collapse), ``reviews``, ``rejected``, ``provider_state_rows``, ``provider_state_checks``,
``balances`` (closing balances excluding quarantined journals), ``negative_balances``,
``delivery_findings``, ``lines`` (rows received per source) and ``counts``.
"""

from __future__ import annotations

from zentra_pipelines.sample._scenario import MIN_INTENTS, SampleFolderError, generate_sample

__all__ = ["MIN_INTENTS", "SampleFolderError", "generate_sample"]
