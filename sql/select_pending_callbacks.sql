-- Callback lines archived but not yet judged.
CREATE OR REPLACE TEMP VIEW callback_lines_new AS
SELECT l.source_file, l.file_sha256, l.line_no, l.text, l.frame_error, l.frame_detail
FROM landing_lines AS l
WHERE l.source = 'callbacks'
  AND NOT EXISTS (
      SELECT 1 FROM callback_checked AS c
      WHERE c.file_sha256 = l.file_sha256 AND c.line_no = l.line_no
  )
