-- The archived source rows whose rowid is listed (view _ledger_rowids(row_id)), in
-- archive order: the rows an incremental ledger run validates again.
SELECT a.posting_id, a.journal_id, a.intent_id, a.tenant_id, a.account_id, a.currency,
       a.amount_minor, a.amount_type, a.posted_at_text, a.actor_id, a.idempotency_key
FROM ledger_source_rows AS a
SEMI JOIN _ledger_rowids AS r ON a.rowid = r.row_id
ORDER BY a.rowid
