-- The newest timestamp anywhere in the data: the reference point for ages (never the clock).
SELECT max(ts) FROM (
    SELECT max(received_at) AS ts FROM callback_events
    UNION ALL SELECT max(created_at) FROM intents
    UNION ALL SELECT max(posted_at) FROM ledger_entries
    UNION ALL SELECT max(settled_at) FROM settlements
    UNION ALL SELECT max(attempted_at) FROM deliveries
)
