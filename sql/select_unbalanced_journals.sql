-- Journals whose entries do not sum to zero per currency, with that sum, over every entry
-- of ledger_entries (a hostile journal could span days or tenants). sum() of BIGINT is
-- HUGEINT in DuckDB: exact, never wrapping. Balanced journals (all but a handful of ~1M at
-- 1M intents) never leave the engine.
-- Read by the packet step (each packet's day checks) and by the packet input fingerprints.
SELECT journal_id, currency, sum(amount_minor) AS total
FROM ledger_entries
GROUP BY ALL
HAVING sum(amount_minor) <> 0
