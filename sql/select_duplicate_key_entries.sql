-- Every ledger entry whose (tenant_id, idempotency_key) is carried by more than one journal_id
-- (a null journal_id counts as one more, as it does for ledger.duplicate_journals): the only
-- entries that function can report on, found in the engine so that Polars groups a handful of
-- keys instead of every entry (6M at 1M intents). Columns: reconciliation_stage.LEDGER_VIEW_COLUMNS.
SELECT e.tenant_id, e.intent_id, e.journal_id, e.account_id, e.currency, e.amount_minor, e.posted_at,
    e.idempotency_key
FROM ledger_entries AS e
SEMI JOIN (
    SELECT tenant_id, idempotency_key
    FROM ledger_entries
    WHERE idempotency_key IS NOT NULL
    GROUP BY tenant_id, idempotency_key
    HAVING count(DISTINCT journal_id) + max(CASE WHEN journal_id IS NULL THEN 1 ELSE 0 END) > 1
) AS d ON e.tenant_id = d.tenant_id AND e.idempotency_key = d.idempotency_key
