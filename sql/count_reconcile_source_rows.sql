-- Per landing file of one source ($source): its rows (every archived line but a settlements file's
-- header line: a readable line 1 without a digit, settlements.is_header_line) and how many of them no
-- quarantine row names by (file_sha256, line_no). The caller puts the source's quarantine table in
-- front of this query as the relation `quarantined` (file_sha256, line_no): a WITH clause naming a constant table.
-- Counted in the engine: only one row per file reaches Polars, not every archived line with its
-- 64-character file hash (688k lines at 100k intents).
SELECT l.source_file, l.file_sha256, count(*) AS received,
    count(*) FILTER (WHERE q.line_no IS NULL) AS accepted
FROM landing_lines AS l
LEFT JOIN (SELECT DISTINCT file_sha256, line_no FROM quarantined) AS q
    ON q.file_sha256 = l.file_sha256 AND q.line_no = l.line_no
WHERE l.source = $source
    AND NOT (l.source = 'settlements' AND l.line_no = 1
             AND l.frame_error IS NULL AND coalesce(NOT regexp_matches(l.text, '[0-9]'), false))
GROUP BY l.source_file, l.file_sha256
