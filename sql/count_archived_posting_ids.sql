-- Distinct posting_ids ever archived (NULL not counted), to compare with the source's own
-- count: more ids in the source than here means rows the read window never reached.
SELECT count(DISTINCT posting_id) FROM ledger_source_rows
