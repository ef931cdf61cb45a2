-- Intent ids named by quarantined intent lines only (no accepted intent), with their codes:
-- a callback for such an intent is still unknown_intent, but its reason says the intent
-- lines exist and why they were refused, not that the log never had them.
SELECT q.tenant_id, q.intent_id, string_agg(DISTINCT q.error_code, ',' ORDER BY q.error_code) AS intent_codes
FROM intents_quarantine AS q
ANTI JOIN intents AS i ON i.tenant_id = q.tenant_id AND i.intent_id = q.intent_id
WHERE q.tenant_id IS NOT NULL AND q.intent_id IS NOT NULL
GROUP BY q.tenant_id, q.intent_id
