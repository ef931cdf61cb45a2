-- One fingerprint per (tenant_id, intent_id) of ledger_entries with an intent: the count and the
-- sum of a 64-bit hash of the entry columns ledger.intent_ledger_view reads (LEDGER_VIEW_COLUMNS;
-- a sum, so equal entries do not cancel and table order does not matter: the view is made of
-- order-free aggregates), hashed with $version (the view's code, library versions and the
-- ledger_accounts the view types entries by). Equal fingerprint = equal view row.
SELECT tenant_id, intent_id,
    hash($version, count(*), sum(hash(journal_id, account_id, currency, amount_minor, posted_at, idempotency_key)))
        AS fingerprint
FROM ledger_entries
WHERE intent_id IS NOT NULL
GROUP BY tenant_id, intent_id
ORDER BY tenant_id, intent_id
