"""Routing decisions on tiny hand-built frames."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from zentra_pipelines.domain.routing import routing_decisions

T0 = datetime(2026, 11, 20, 10, 0)


def test_an_intent_routed_through_two_providers_names_one_provider_with_its_own_ref():
    intents = pl.DataFrame({"tenant_id": ["t_a"], "intent_id": ["in_1"], "corridor": ["EUR:SEPA:EUR"],
                            "created_at": [T0]})
    decisions = pl.DataFrame({"tenant_id": ["t_a"], "intent_id": ["in_1"], "outcome": ["accepted"]})
    state = pl.DataFrame({
        "tenant_id": ["t_a", "t_a"], "intent_id": ["in_1", "in_1"], "provider": ["zeta_pay", "acme_pay"],
        "provider_ref": ["aa_two", "zz_two"], "type": ["payment.captured", "payment.captured"],
        "received_at": [T0, T0],
    })
    out = routing_decisions(intents, decisions, state)
    assert out.select("provider", "provider_ref", "status").rows() == [("acme_pay", "zz_two", "routed")]
    assert out["reason"][0] == "corridor EUR:SEPA:EUR selects rail SEPA; provider acme_pay confirmed ref zz_two " \
                               "by a verified callback"
