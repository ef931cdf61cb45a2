-- Intents with quarantined ledger postings, with the codes:
-- a provider's callback for such an intent is still missing_in_ledger, but its reason says
-- the core did post and why the postings were refused, not that the ledger has none.
-- The quarantine keeps no intent_id: it is read from the archived source rows.
SELECT a.tenant_id, a.intent_id, string_agg(DISTINCT q.error_code, ',' ORDER BY q.error_code) AS ledger_codes
FROM ledger_postings_quarantine AS q
JOIN ledger_source_rows AS a ON a.posting_id = q.posting_id AND a.tenant_id IS NOT DISTINCT FROM q.tenant_id
WHERE a.tenant_id IS NOT NULL AND a.intent_id IS NOT NULL
GROUP BY a.tenant_id, a.intent_id
