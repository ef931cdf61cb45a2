-- The source's posting ids against the archive's, as sets, after a windowed read.
-- Input view: _source_posting_ids(posting_id), every distinct non-NULL id the source holds now.
-- unread: ids in the source never archived (postings that landed late, dated before the
--         read window): the caller reads the whole source once.
-- deleted: ids archived earlier that the source no longer holds (removed there). The
--         archive is append-only evidence, so they stay in the ledger; the run says so.
SELECT
    (SELECT count(*) FROM _source_posting_ids AS s
     WHERE NOT EXISTS (SELECT 1 FROM ledger_source_rows AS a WHERE a.posting_id = s.posting_id)) AS unread,
    (SELECT count(DISTINCT a.posting_id) FROM ledger_source_rows AS a
     WHERE a.posting_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM _source_posting_ids AS s WHERE s.posting_id = a.posting_id)) AS deleted
