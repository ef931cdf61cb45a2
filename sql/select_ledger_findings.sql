-- Business findings of one type (reported, never blocking).
SELECT tenant_id, account_id, intent_id, amount_minor, currency, detail
FROM ledger_findings
WHERE finding_type = $finding_type
ORDER BY tenant_id, account_id, intent_id
