-- One tenant's ledger journals as the timeline shows them: one row per (tenant_id, intent_id, journal_id).
-- Parameter: $tenant. Aggregated in the engine so that only journals, not every entry with its
-- 64-character hashes, reach Polars (6M entries, ~1M journals at 1M intents).
-- "First" is the journal's first entry in chain order (entry_seq; ledger_entries is updated in
-- place, so its physical order is not the chain's); entry_hash is the one of the journal's highest entry_seq (its last entry); moved sums the
-- positive amounts (0 when there are none).
SELECT tenant_id, intent_id, journal_id,
    min(posted_at) AS posted_at,
    arg_min_null(actor_id, entry_seq) AS actor_id,
    arg_min_null(idempotency_key, entry_seq) AS idempotency_key,
    arg_max_null(entry_hash, entry_seq) AS entry_hash,
    CAST(coalesce(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0) AS BIGINT) AS moved,
    arg_min_null(currency, entry_seq) AS currency
FROM ledger_entries
WHERE tenant_id = $tenant
GROUP BY tenant_id, intent_id, journal_id
