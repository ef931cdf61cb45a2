-- The judged callback lines a run that added the files $files converges again (ingest.run_callbacks):
-- every line of those files (bad ones go to the quarantine), and every accepted-so-far line of each
-- event that shares a provider_ref with an event of theirs. That is all a changed event or state
-- depends on: an event's copies, first arrival and conflict are decided by its own lines, a ref's
-- state by the events naming it. The event and ref keys of a line judged ok are never NULL.
-- In landing order.
WITH new_events AS (
    SELECT DISTINCT tenant_id, provider, event_id FROM callback_checked
    WHERE error_code IS NULL AND list_contains(CAST($files AS VARCHAR[]), file_sha256)
),
refs AS (
    SELECT DISTINCT c.tenant_id, c.provider, c.provider_ref
    FROM callback_checked AS c SEMI JOIN new_events USING (tenant_id, provider, event_id)
    WHERE c.error_code IS NULL
),
events AS (
    SELECT DISTINCT c.tenant_id, c.provider, c.event_id
    FROM callback_checked AS c SEMI JOIN refs USING (tenant_id, provider, provider_ref)
    WHERE c.error_code IS NULL
)
SELECT c.* FROM callback_checked AS c
WHERE list_contains(CAST($files AS VARCHAR[]), c.file_sha256)
   OR (c.error_code IS NULL AND EXISTS (
        SELECT 1 FROM events AS e
        WHERE e.tenant_id = c.tenant_id AND e.provider = c.provider AND e.event_id = c.event_id))
ORDER BY c.source_file, c.line_no, c.file_sha256
