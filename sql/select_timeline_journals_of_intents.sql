-- Some intents' ledger journals as the timeline shows them: select_timeline_journals restricted to
-- the intents of $intents (a list) of one tenant ($tenant). A journal's rows all carry its intent, so
-- every selected group holds all its entries and the aggregates (first in table order by rowid,
-- entry_hash of the last entry_seq, moved) are exactly the whole table's for those journals.
SELECT tenant_id, intent_id, journal_id,
    min(posted_at) AS posted_at,
    arg_min_null(actor_id, rowid) AS actor_id,
    arg_min_null(idempotency_key, rowid) AS idempotency_key,
    arg_max_null(entry_hash, entry_seq) AS entry_hash,
    CAST(coalesce(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0) AS BIGINT) AS moved,
    arg_min_null(currency, rowid) AS currency
FROM ledger_entries
WHERE tenant_id = $tenant AND intent_id IN (SELECT unnest($intents))
GROUP BY tenant_id, intent_id, journal_id
