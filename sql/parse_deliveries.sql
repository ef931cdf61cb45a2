-- Parse framed outbound-delivery lines (contract 2.5) into typed rows plus one error code per bad line.
-- Input views: delivery_lines(source_file, file_sha256, line_no, text, frame_error, frame_detail),
--              iso_currencies(currency) (unused here, registered by intake.parse_source for every source).
-- Parameter: $identifier, the contract identifier pattern without anchors.
-- Required: delivery_id, event_id, tenant_id, endpoint, attempt, attempted_at (absent or null: missing_field).
-- Nullable: status_code (null = the connection failed), error, latency_ms; an absent key reads as null.
-- Rows come in line order. Every consumer sorts by its own key, but without this ORDER BY the step's
-- peak RSS at 1M intents rose from 4.1 to 5.0 GiB (the unordered result reached Polars in a shape
-- that cost ~1 GB more downstream) for ~5% of the query's CPU.
-- Cost notes (2.67M lines at 1M intents): each JSON function parses the whole line again, and list
-- lambdas run per element, so types and texts are read with one path-list call each, and the lists
-- of offending names are only built for the lines that have an offence.
WITH valid AS (
    -- json_valid in a CTE of its own: DuckDB hoists common subexpressions out of CASE,
    -- so JSON functions must never see an invalid text, whatever the CASE order says.
    SELECT l.*, CASE WHEN json_strict_valid(json_text(l.text, l.line_no)) THEN json_text(l.text, l.line_no) END AS j FROM delivery_lines AS l
),
objects AS (
    SELECT *, json_type(j) AS top_type FROM valid
),
fields AS (
    SELECT source_file, file_sha256, line_no, frame_error, frame_detail, j, top_type,
        CASE WHEN top_type = 'OBJECT' THEN json_keys(j) END AS k,
        -- json_type: NULL when the key is absent, 'NULL' when it is JSON null
        CASE WHEN top_type = 'OBJECT' THEN json_type(j, [
            '$.delivery_id', '$.event_id', '$.tenant_id', '$.endpoint', '$.attempt', '$.attempted_at',
            '$.status_code', '$.error', '$.latency_ms'])
        END AS t,
        CASE WHEN top_type = 'OBJECT' THEN json_extract_string(j, [
            '$.delivery_id', '$.event_id', '$.tenant_id', '$.endpoint', '$.attempt', '$.attempted_at',
            '$.status_code', '$.error', '$.latency_ms'])
        END AS s
    FROM objects
),
typed AS (
    SELECT *,
        -- the usual line: exactly the contract's keys in the contract's order (no duplicate possible)
        CASE WHEN k = ['delivery_id', 'event_id', 'tenant_id', 'endpoint', 'attempt', 'attempted_at',
                       'status_code', 'error', 'latency_ms'] THEN false
             ELSE len(k) <> len(list_distinct(k)) END AS dup_keys,
        s[1] AS delivery_id, s[2] AS event_id, s[3] AS tenant_id,
        -- credentials in a URL (https://user:password@host/...) are a secret: the userinfo is
        -- masked before the endpoint reaches any table, hash, packet or summary, and so is any
        -- URL userinfo quoted in the error text. Greedy up to the authority's last '@', so a
        -- password holding an unencoded '@' is masked whole.
        regexp_replace(s[4], '(?i)^(https?://)[^/?#]*@', '\1***@') AS endpoint, s[5] AS attempt_s,
        s[6] AS attempted_at_s, s[7] AS status_s,
        regexp_replace(s[8], '(?i)(https?://)[^/?#\s]*@', '\1***@', 'g') AS error_s, s[9] AS latency_s,
        regexp_full_match(s[1], $identifier) AS delivery_id_ok,
        regexp_full_match(s[2], $identifier) AS event_id_ok,
        regexp_full_match(s[3], $identifier) AS tenant_id_ok
    FROM fields
),
stamped AS (
    SELECT *,
        iso_utc(attempted_at_s) AS attempted_at_raw,
        ['delivery_id', 'event_id', 'tenant_id', 'endpoint', 'attempt', 'attempted_at',
         'status_code', 'error', 'latency_ms'] AS names,
        t[1] = 'VARCHAR' AND t[2] = 'VARCHAR' AND t[3] = 'VARCHAR' AND t[4] = 'VARCHAR' AND t[5] IS NOT NULL
            AND t[6] = 'VARCHAR' AND coalesce(t[8], 'NULL') IN ('VARCHAR', 'NULL') AS well_typed
    FROM typed
),
checked AS (
    SELECT *,
        attempted_at_raw AS attempted_at,
        CASE WHEN well_typed AND t[5] <> 'NULL' THEN [] ELSE
        list_filter(names[1:6], lambda n, i: coalesce(t[i], 'NULL') = 'NULL') END AS missing_names,
        CASE WHEN well_typed THEN [] ELSE
        list_filter(names, lambda n, i:
            CASE WHEN i IN (1, 2, 3, 4, 6) THEN t[i] <> 'VARCHAR'
                 WHEN i = 8 THEN coalesce(t[i], 'NULL') NOT IN ('VARCHAR', 'NULL')
                 ELSE false END) END AS mistyped_names,
        CASE WHEN delivery_id_ok AND event_id_ok AND tenant_id_ok THEN [] ELSE
        list_filter(names[1:3], lambda n, i: NOT [delivery_id_ok, event_id_ok, tenant_id_ok][i]) END AS bad_id_names,
        regexp_full_match(endpoint, 'https?://[^\s\p{Cc}\p{Cf}\p{Z}]+') AND length(endpoint) <= 2048 AS endpoint_ok,
        t[5] IN ('UBIGINT', 'BIGINT') AND coalesce(try_cast(attempt_s AS BIGINT) >= 1, false) AS attempt_ok,
        coalesce(t[7], 'NULL') = 'NULL'
            OR (t[7] IN ('UBIGINT', 'BIGINT') AND coalesce(try_cast(status_s AS BIGINT) BETWEEN 100 AND 599, false))
            AS status_ok,
        coalesce(t[9], 'NULL') = 'NULL'
            OR (t[9] IN ('UBIGINT', 'BIGINT') AND coalesce(try_cast(latency_s AS BIGINT) >= 0, false))
            AS latency_ok
    FROM stamped
),
judged AS (
    SELECT *,
        -- the reason: an error code, or 'endpoint_invalid' (reported as invalid_field_type)
        CASE
            WHEN frame_error IS NOT NULL THEN frame_error
            WHEN j IS NULL THEN 'malformed_json'
            WHEN top_type <> 'OBJECT' THEN 'not_an_object'
            WHEN dup_keys THEN 'duplicate_json_key'
            WHEN len(missing_names) > 0 THEN 'missing_field'
            WHEN len(mistyped_names) > 0 THEN 'invalid_field_type'
            WHEN len(bad_id_names) > 0 THEN 'invalid_identifier'
            WHEN NOT endpoint_ok THEN 'endpoint_invalid'
            WHEN attempted_at IS NULL THEN 'invalid_timestamp'
            WHEN NOT attempt_ok THEN 'attempt_invalid'
            WHEN NOT status_ok THEN 'status_code_invalid'
            WHEN NOT latency_ok THEN 'latency_invalid'
        END AS reason
    FROM checked
),
decided AS (
    SELECT *, CASE WHEN reason = 'endpoint_invalid' THEN 'invalid_field_type' ELSE reason END AS error_code
    FROM judged
)
SELECT source_file, file_sha256, line_no,
    CASE WHEN t[3] = 'VARCHAR' AND tenant_id_ok THEN tenant_id END AS tenant_id,
    CASE WHEN t[1] = 'VARCHAR' AND delivery_id_ok THEN delivery_id END AS delivery_id,
    CASE WHEN error_code IS NULL THEN event_id END AS event_id,
    CASE WHEN error_code IS NULL THEN endpoint END AS endpoint,
    CASE WHEN error_code IS NULL THEN try_cast(attempt_s AS BIGINT) END AS attempt,
    attempted_at,
    CASE WHEN error_code IS NULL THEN try_cast(status_s AS BIGINT) END AS status_code,
    CASE WHEN error_code IS NULL AND t[8] = 'VARCHAR' THEN error_s END AS error,
    CASE WHEN error_code IS NULL THEN try_cast(latency_s AS BIGINT) END AS latency_ms,
    error_code,
    coalesce(frame_detail, CASE reason
        WHEN 'malformed_json' THEN 'the line is not valid JSON'
        WHEN 'not_an_object' THEN 'the line is JSON but not an object'
        WHEN 'duplicate_json_key' THEN 'an object repeats a key'
        WHEN 'missing_field' THEN 'required field(s) absent or null: ' || array_to_string(missing_names, ', ')
        WHEN 'invalid_field_type' THEN 'field(s) of the wrong JSON type: ' || array_to_string(mistyped_names, ', ')
        WHEN 'invalid_identifier' THEN 'not a contract identifier: ' || array_to_string(bad_id_names, ', ')
        WHEN 'endpoint_invalid' THEN 'endpoint is not an http(s):// URL of at most 2048 characters '
            || 'free of whitespace and control characters'
        WHEN 'invalid_timestamp' THEN 'attempted_at is not an ISO 8601 timestamp with Z or an offset'
        WHEN 'attempt_invalid' THEN 'attempt is not a positive integer (JSON ' || lower(t[5]) || ')'
        WHEN 'status_code_invalid' THEN 'status_code is neither null nor an integer 100..599 (JSON ' || lower(t[7]) || ')'
        WHEN 'latency_invalid' THEN 'latency_ms is neither null nor a non-negative integer (JSON ' || lower(t[9]) || ')'
    END) AS detail,
    -- JSON of the typed values: unambiguous (no separator collisions, null distinct from text)
    CASE WHEN error_code IS NULL THEN sha256(CAST(to_json({
        'tenant_id': tenant_id, 'delivery_id': delivery_id, 'event_id': event_id, 'endpoint': endpoint,
        'attempt': try_cast(attempt_s AS BIGINT),
        'attempted_at': strftime(attempted_at, '%Y-%m-%dT%H:%M:%S.%fZ'),
        'status_code': try_cast(status_s AS BIGINT),
        'error': CASE WHEN t[8] = 'VARCHAR' THEN error_s END,
        'latency_ms': try_cast(latency_s AS BIGINT)}) AS VARCHAR)) END AS content_hash
FROM decided
ORDER BY source_file, line_no, file_sha256
