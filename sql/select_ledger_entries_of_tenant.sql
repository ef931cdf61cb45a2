-- One tenant's ledger entries, in stored order (NULL matches NULL): not the chain's once an
-- incremental run updated the table in place; the chain check sorts by entry_seq when needed.
SELECT *
FROM ledger_entries
WHERE tenant_id IS NOT DISTINCT FROM $tenant
