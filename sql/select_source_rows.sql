-- The archived lines of one source that are rows (a CSV file's first line is its header).
SELECT source_file, file_sha256, line_no
FROM landing_lines
WHERE source = $source
  AND NOT (source = 'settlements' AND line_no = 1)
ORDER BY source_file, file_sha256, line_no
