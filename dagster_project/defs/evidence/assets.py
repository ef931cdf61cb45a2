"""Evidenced: one sealed, signed audit packet per tenant and UTC day."""

import dagster as dg

from dagster_project.defs.lifecycle import EVIDENCED, OWNERS, POOL
from dagster_project.defs.metadata import md_frame
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import evidence_stage


@dg.asset(
    group_name="evidence",
    deps=["reconciliation_breaks", "intent_timeline", "ledger_balances", "review_queue", "webhook_health",
          "ingest_accounting"],
    kinds={"python", "zip"},
    owners=OWNERS,
    pool=POOL,
    tags={"lifecycle": EVIDENCED},
    description="Versioned, Ed25519-signed audit packets (packets/<tenant>/<day>/v<N>.zip) that "
    "auditors verify offline with sha256sum and openssl. Same content seals no new version.",
)
def audit_packets(context: dg.AssetExecutionContext, zentra: ZentraResource) -> dg.MaterializeResult:
    settings = zentra.settings()
    tenants = evidence_stage.configured_tenants(settings.policies, settings.secrets)
    with zentra.warehouse() as con:
        r = evidence_stage.run_packets(con, settings.home, tenants, settings.signing_key)
    if r.key_kind == "development":
        context.log.warning("Packets signed with a DEVELOPMENT key: set ZENTRA_SIGNING_KEY for real evidence.")
    return dg.MaterializeResult(
        metadata={
            "packets": r.packets.height,
            "sealed_this_run": r.sealed_now,
            "key_id": r.key_id,
            "key_kind": r.key_kind,
            "packets_table": md_frame(r.packets.select("tenant_id", "period", "version", "created", "merkle_root")),
            "packets_root": dg.MetadataValue.path(str(settings.home / "packets")),
        }
    )
