"""Interop with the Standard Webhooks reference library (`standardwebhooks`).

What the reference signs, our SQL verifier accepts; what our signer produces, the
reference verifies; and a header the reference cannot even parse is quarantined by us
with a code instead of crashing the run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers.callbacks import (
    ALPHA_SECRET,
    ALPHA_SECRET_NEXT,
    BETA_SECRET,
    T0,
    body_text,
    flat_body,
    make_callback,
    make_secret,
    nested_body,
    run_lines,
)
from zentra_pipelines.domain import errors
from zentra_pipelines.domain.webhooks import sign

BODIES = {
    "flat": body_text(flat_body(event_id="evt_ref_flat")),
    "nested": body_text(nested_body(event_id="evt_ref_nested", sequence=2)),
    "non_ascii": json.dumps(flat_body(event_id="evt_ref_utf8", sequence=3, note="Zürich – 東京 😀"),
                            ensure_ascii=False),
    "pretty": json.dumps(flat_body(event_id="evt_ref_pretty", sequence=4), indent=2),
}


def test_reference_signatures_verify_in_ours(tmp_path):
    secrets = {"t_alpha": {"acme_pay": [ALPHA_SECRET, ALPHA_SECRET_NEXT]}, "t_beta": {"acme_pay": [BETA_SECRET]}}
    lines = []
    for i, (name, body) in enumerate(BODIES.items()):
        sent_at = T0 + timedelta(minutes=i)
        secret = ALPHA_SECRET_NEXT if name == "pretty" else ALPHA_SECRET
        msg_id = f"msg_ref_{name}"
        signature = Webhook(secret).sign(msg_id, sent_at, body)
        lines.append(make_callback(body, webhook_id=msg_id, ts=int(sent_at.timestamp()), signature=signature,
                                   received_at=sent_at + timedelta(seconds=1)))
    # the reference library with a secret of another tenant: a forgery to us
    body = body_text(flat_body(event_id="evt_ref_forged"))
    lines.append(make_callback(body, webhook_id="msg_forged", ts=int(T0.timestamp()),
                               signature=Webhook(BETA_SECRET).sign("msg_forged", T0, body)))
    checked, result = run_lines(tmp_path, lines, secrets)
    assert checked["error_code"].to_list() == [None, None, None, None, errors.SIGNATURE_MISMATCH]
    assert checked["detail"].to_list()[:4] == [None] * 4
    assert result.events.height == 4


@pytest.mark.parametrize("secret", [ALPHA_SECRET, ALPHA_SECRET_NEXT, make_secret("tiny", size=1)])
@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_our_signatures_verify_in_the_reference(secret, body):
    # the reference checks webhook-timestamp against the wall clock: sign with "now"
    now = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": "msg_ours_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, "msg_ours_1", now, body)}
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    # and it is exactly the reference's own signature
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_ours_1", datetime.fromtimestamp(now, UTC), body)
    tampered = dict(headers, **{"webhook-id": "msg_ours_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, tampered)


def test_several_signatures_agree_with_the_reference():
    now = int(datetime.now(UTC).timestamp())
    body = BODIES["flat"]
    header = " ".join([sign(BETA_SECRET, "msg_multi", now, body), sign(ALPHA_SECRET, "msg_multi", now, body)])
    headers = {"webhook-id": "msg_multi", "webhook-timestamp": str(now), "webhook-signature": header}
    Webhook(ALPHA_SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(make_secret("nobody")).verify(body, headers)


def test_malformed_header_breaks_the_reference_but_is_quarantined_by_us(tmp_path):
    now = int(datetime.now(UTC).timestamp())
    body = BODIES["flat"]
    with pytest.raises(Exception):  # noqa: B017 - the reference raises ValueError on unpacking 'v1'
        Webhook(ALPHA_SECRET).verify(body, {"webhook-id": "msg_bad", "webhook-timestamp": str(now),
                                            "webhook-signature": "v1"})
    line = make_callback(body, webhook_id="msg_bad", signature="v1")
    checked, result = run_lines(tmp_path, [line, make_callback(body_text(flat_body(event_id="evt_fine")))])
    assert checked["error_code"].to_list() == [errors.SIGNATURE_MALFORMED, None]
    assert result.quarantine["error_code"].to_list() == [errors.SIGNATURE_MALFORMED]
    assert result.events.height == 1  # the run goes on for the good line
