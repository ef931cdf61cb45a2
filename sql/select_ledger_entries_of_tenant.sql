-- One tenant's ledger entries, in stored order (NULL matches NULL).
SELECT *
FROM ledger_entries
WHERE tenant_id IS NOT DISTINCT FROM $tenant
