-- Provider refs whose highest sequence is carried by events that disagree (type, amount,
-- currency or intent): the contract's "highest sequence wins" names no single winner, so
-- the state taken (the smallest event_id's) is reported as a sequence_tie break. Events
-- that agree in substance (a resend under a new event_id) are not a tie worth reporting.
WITH top AS (
    SELECT tenant_id, provider, provider_ref, max(sequence) AS sequence
    FROM callback_events
    GROUP BY tenant_id, provider, provider_ref
)
SELECT e.tenant_id, e.provider, e.provider_ref, e.sequence,
    string_agg(DISTINCT e.event_id, ',' ORDER BY e.event_id) AS event_ids,
    min(e.received_at) AS first_received_at
FROM callback_events AS e
JOIN top ON e.tenant_id = top.tenant_id AND e.provider = top.provider
    AND e.provider_ref = top.provider_ref AND e.sequence = top.sequence
GROUP BY e.tenant_id, e.provider, e.provider_ref, e.sequence
HAVING count(DISTINCT (e.type, e.amount_minor, e.currency, e.intent_id)) > 1
