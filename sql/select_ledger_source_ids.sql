-- Every archived source row's rowid, posting_id and journal_id, in archive order: all an
-- incremental ledger run needs of the rows its new ones do not touch.
SELECT rowid AS row_id, posting_id, journal_id
FROM ledger_source_rows
ORDER BY rowid
