-- Shared SQL helpers, created per connection (TEMP): one definition of an ISO 8601 UTC
-- timestamp for every source. Out-of-calendar values (year 0, year 10000 after the
-- offset is applied) are NULL, i.e. invalid_timestamp, never a crash further down.
CREATE OR REPLACE TEMP MACRO iso_utc_raw(s) AS timezone('UTC', try_cast(
    CASE WHEN regexp_full_match(s, '[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])')
    THEN s END AS TIMESTAMPTZ));
CREATE OR REPLACE TEMP MACRO iso_utc(s) AS
    CASE WHEN iso_utc_raw(s) BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '9999-12-31 23:59:59.999999'
    THEN iso_utc_raw(s) END;
-- The JSON of a JSONL line: a UTF-8 byte order mark opening a file (line 1) is not JSON,
-- and RFC 8259 lets a parser ignore it; a BOM anywhere else stays and fails as JSON.
CREATE OR REPLACE TEMP MACRO json_text(s, line_no) AS
    CASE WHEN line_no = 1 AND starts_with(s, chr(65279)) THEN substr(s, 2) ELSE s END;
