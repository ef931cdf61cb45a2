-- Every tenant with ledger entries (NULL included, should a corrupted row carry none),
-- so the integrity check can read the entries one tenant at a time.
SELECT DISTINCT tenant_id
FROM ledger_entries
ORDER BY tenant_id NULLS LAST
