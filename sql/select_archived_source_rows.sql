-- Archived source rows sharing a posting_id (NULL included) with the rows just read
-- (view _ledger_read_ids(posting_id)): the only rows a new read can duplicate.
SELECT a.posting_id, a.journal_id, a.intent_id, a.tenant_id, a.account_id, a.currency,
       a.amount_minor, a.amount_type, a.posted_at_text, a.actor_id, a.idempotency_key
FROM ledger_source_rows AS a
SEMI JOIN _ledger_read_ids AS r ON a.posting_id IS NOT DISTINCT FROM r.posting_id
