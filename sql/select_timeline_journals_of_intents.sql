-- Some intents' ledger journals as the timeline shows them: select_timeline_journals restricted to
-- the (tenant_id, intent_id) of the relation _timeline_redo the caller registers, every tenant at
-- once. A journal's rows all carry its intent, so every selected group holds all its entries and
-- the aggregates (first in chain order by entry_seq, entry_hash of the last entry_seq, moved) are
-- exactly the whole table's for those journals.
SELECT e.tenant_id, e.intent_id, e.journal_id,
    min(e.posted_at) AS posted_at,
    arg_min_null(e.actor_id, e.entry_seq) AS actor_id,
    arg_min_null(e.idempotency_key, e.entry_seq) AS idempotency_key,
    arg_max_null(e.entry_hash, e.entry_seq) AS entry_hash,
    CAST(coalesce(sum(e.amount_minor) FILTER (WHERE e.amount_minor > 0), 0) AS BIGINT) AS moved,
    arg_min_null(e.currency, e.entry_seq) AS currency
FROM ledger_entries AS e
SEMI JOIN _timeline_redo AS r ON e.tenant_id = r.tenant_id AND e.intent_id = r.intent_id
GROUP BY e.tenant_id, e.intent_id, e.journal_id
