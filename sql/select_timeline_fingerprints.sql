-- One fingerprint per (tenant_id, intent_id) of intents: what that intent's timeline rows are built
-- from, so a run can tell which intents' rows could have changed since the fingerprints were stored.
-- Parameter: $version (the timeline code's own digest: a code change changes every fingerprint).
-- Each layer contributes the count and the sum of a 64-bit hash of the rows intent_timeline reads
-- for the intent (a sum, not a XOR: two equal rows do not cancel), taken after the same reductions
-- run_timeline applies, with the values a reduction picks hashed where it picks them:
--   * provider events: one row per (tenant_id, provider, event_id): its first copy in table order
--     (rowid, the order a plain SELECT returns and Polars' first() sees), the earliest received_at
--     and the number of copies, owned by the first copy's intent;
--   * deliveries: every attempt whose (tenant_id, event_id) one of the intent's events carries;
--   * journals: per (tenant_id, intent_id, journal_id) what select_timeline_journals shows (the first
--     entry's actor, key and currency by entry_seq, the last entry_seq's entry_hash, min posted_at, moved).
-- Grouping is what costs here (~0.8 CPU s at 100k intents, 850k input rows): hashing the picked
-- values inside the aggregates keeps each group's state to integers.
-- The fingerprint is a hash of $version and every layer's count and sum. Ordered by tenant_id, intent_id.
WITH events AS (
    SELECT tenant_id, event_id,
        arg_min_null(intent_id, rowid) AS intent_id,
        hash(provider, event_id,
             arg_min_null(hash(intent_id, "type", "sequence", amount_minor, currency, occurred_at), rowid),
             min(received_at), count(*)) AS h
    FROM callback_events
    GROUP BY tenant_id, provider, event_id
),
event_layer AS (
    SELECT tenant_id, intent_id, count(*) AS n, sum(h) AS h FROM events GROUP BY tenant_id, intent_id
),
event_intents AS (
    SELECT DISTINCT tenant_id, event_id, intent_id FROM events
),
delivery_layer AS (
    SELECT e.tenant_id, e.intent_id, count(*) AS n,
        sum(hash(d.event_id, d.delivery_id, d.endpoint, d.attempt, d.attempted_at, d.status_code, d.error)) AS h
    FROM deliveries AS d
    JOIN event_intents AS e ON d.tenant_id = e.tenant_id AND d.event_id = e.event_id
    GROUP BY e.tenant_id, e.intent_id
),
journals AS (
    SELECT tenant_id, intent_id, journal_id,
        min(posted_at) AS posted_at,
        arg_min_null(hash(actor_id, idempotency_key, currency), entry_seq) AS firsts,
        arg_max_null(hash(entry_hash), entry_seq) AS entry_hash,
        CAST(coalesce(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0) AS BIGINT) AS moved
    FROM ledger_entries
    GROUP BY tenant_id, intent_id, journal_id
),
journal_layer AS (
    SELECT tenant_id, intent_id, count(*) AS n,
        sum(hash(journal_id, posted_at, firsts, entry_hash, moved)) AS h
    FROM journals
    GROUP BY tenant_id, intent_id
),
policy_layer AS (
    SELECT tenant_id, intent_id, count(*) AS n,
        sum(hash(decided_at, service, actor_id, outcome, reason, policy_version, owner)) AS h
    FROM policy_decisions
    GROUP BY tenant_id, intent_id
),
routing_layer AS (
    SELECT tenant_id, intent_id, count(*) AS n,
        sum(hash(decided_at, service, status, reason, provider_ref)) AS h
    FROM routing_decisions
    GROUP BY tenant_id, intent_id
),
intent_layer AS (
    SELECT tenant_id, intent_id, count(*) AS n,
        sum(hash(created_at, actor_id, kind, amount_minor, currency, corridor, scope)) AS h
    FROM intents
    WHERE tenant_id IS NOT NULL AND intent_id IS NOT NULL
    GROUP BY tenant_id, intent_id
)
SELECT i.tenant_id, i.intent_id,
    hash($version, i.n, i.h, p.n, p.h, j.n, j.h, r.n, r.h, e.n, e.h, d.n, d.h) AS fingerprint
FROM intent_layer AS i
LEFT JOIN policy_layer AS p ON p.tenant_id = i.tenant_id AND p.intent_id = i.intent_id
LEFT JOIN journal_layer AS j ON j.tenant_id = i.tenant_id AND j.intent_id = i.intent_id
LEFT JOIN routing_layer AS r ON r.tenant_id = i.tenant_id AND r.intent_id = i.intent_id
LEFT JOIN event_layer AS e ON e.tenant_id = i.tenant_id AND e.intent_id = i.intent_id
LEFT JOIN delivery_layer AS d ON d.tenant_id = i.tenant_id AND d.intent_id = i.intent_id
ORDER BY i.tenant_id, i.intent_id
