-- Parse framed intent lines (contract 2.2) into typed rows plus one error code per bad line.
-- Input view: intent_lines(source_file, file_sha256, line_no, text, frame_error, frame_detail).
WITH valid AS (
    SELECT l.*, CASE WHEN json_strict_valid(json_text(l.text, l.line_no)) THEN json_text(l.text, l.line_no) END AS j FROM intent_lines AS l
),
fields AS (
    -- Each JSON function parses its whole input again, so every field is asked for in one
    -- call per function (a list of paths): types, string values and keys, one parse each.
    -- A path under a non-object or a missing one gives NULL, as extracting the field first did.
    SELECT source_file, file_sha256, line_no, frame_error, frame_detail, j,
        json_type(j, ['$', '$.intent_id', '$.tenant_id', '$.scope', '$.kind', '$.amount_minor', '$.currency',
            '$.ledger_currency', '$.corridor', '$.actor_id', '$.created_at', '$.primitives']) AS tt,
        json_extract_string(j, ['$.intent_id', '$.tenant_id', '$.scope', '$.kind', '$.amount_minor', '$.currency',
            '$.ledger_currency', '$.corridor', '$.actor_id', '$.created_at']) AS f,
        json_keys(j) AS keys
    FROM valid
),
typed AS (
    SELECT source_file, file_sha256, line_no, frame_error, frame_detail, j,
        tt[1] AS top_type,
        CASE WHEN tt[1] = 'OBJECT' THEN len(keys) <> len(list_distinct(keys)) END AS dup_keys,
        tt[2:] AS t,
        f[1] AS intent_id, f[2] AS tenant_id, f[3] AS scope,
        f[4] AS kind, f[5] AS amount_s, f[6] AS currency,
        f[7] AS ledger_currency, f[8] AS corridor, f[9] AS actor_id,
        f[10] AS created_at_s,
        CASE WHEN tt[12] = 'ARRAY' THEN json_extract_string(j, '$.primitives[*]') END AS primitives,
        CASE WHEN tt[12] = 'ARRAY' THEN json_type(j, '$.primitives[*]') END AS primitive_types
    FROM fields
),
stamped AS (
    SELECT *,
        iso_utc(created_at_s) AS created_at,
        string_split(corridor, ':') AS corridor_parts
    FROM typed
),
judged AS (
    SELECT *,
        CASE
            WHEN frame_error IS NOT NULL THEN frame_error
            WHEN j IS NULL THEN 'malformed_json'
            WHEN top_type <> 'OBJECT' THEN 'not_an_object'
            WHEN dup_keys THEN 'duplicate_json_key'
            -- amount first among missing fields: its own codes are more precise
            WHEN list_contains(list_transform([1, 2, 3, 4, 6, 7, 8, 9, 10], lambda i: coalesce(t[i], 'NULL')), 'NULL')
                THEN 'missing_field'
            WHEN t[1] <> 'VARCHAR' OR t[2] <> 'VARCHAR' OR t[3] <> 'VARCHAR' OR t[4] <> 'VARCHAR'
              OR t[6] <> 'VARCHAR' OR t[7] <> 'VARCHAR' OR t[8] <> 'VARCHAR' OR t[9] <> 'VARCHAR'
              OR t[10] <> 'VARCHAR' OR (t[11] IS NOT NULL AND t[11] NOT IN ('ARRAY', 'NULL'))
              OR list_bool_or(list_transform(coalesce(primitive_types, []), lambda x: x <> 'VARCHAR'))
                THEN 'invalid_field_type'
            WHEN NOT regexp_full_match(intent_id, $identifier) OR NOT regexp_full_match(tenant_id, $identifier)
              OR NOT regexp_full_match(scope, $identifier) OR NOT regexp_full_match(actor_id, $identifier)
                THEN 'invalid_identifier'
            WHEN created_at IS NULL THEN 'invalid_timestamp'
            WHEN kind NOT IN ('payment', 'transfer', 'payout', 'card') THEN 'kind_unknown'
            WHEN t[5] IS NULL OR t[5] = 'NULL' THEN 'amount_missing'
            WHEN t[5] = 'BOOLEAN' THEN 'amount_boolean'
            WHEN t[5] = 'VARCHAR' THEN 'amount_string'
            WHEN t[5] IN ('BIGINT', 'UBIGINT') AND try_cast(amount_s AS BIGINT) IS NULL THEN 'amount_out_of_range'
            WHEN t[5] = 'DOUBLE' AND regexp_full_match(amount_s, '-?[0-9]+') THEN 'amount_out_of_range'
            WHEN t[5] = 'DOUBLE' THEN 'amount_float'
            WHEN t[5] NOT IN ('BIGINT', 'UBIGINT') THEN 'amount_invalid'
            WHEN currency NOT IN (SELECT currency FROM iso_currencies)
              OR ledger_currency NOT IN (SELECT currency FROM iso_currencies) THEN 'currency_unknown'
            WHEN len(corridor_parts) <> 3 OR corridor_parts[1] <> currency OR corridor_parts[3] <> ledger_currency
              OR NOT regexp_full_match(corridor_parts[2], '[A-Z0-9_]{1,32}') THEN 'corridor_invalid'
        END AS error_code
    FROM stamped
)
SELECT source_file, file_sha256, line_no,
    CASE WHEN t[2] = 'VARCHAR' AND regexp_full_match(tenant_id, $identifier) THEN tenant_id END AS tenant_id,
    CASE WHEN t[1] = 'VARCHAR' AND regexp_full_match(intent_id, $identifier) THEN intent_id END AS intent_id,
    CASE WHEN error_code IS NULL THEN scope END AS scope,
    CASE WHEN error_code IS NULL THEN kind END AS kind,
    CASE WHEN error_code IS NULL THEN try_cast(amount_s AS BIGINT) END AS amount_minor,
    CASE WHEN error_code IS NULL THEN currency END AS currency,
    CASE WHEN error_code IS NULL THEN ledger_currency END AS ledger_currency,
    CASE WHEN error_code IS NULL THEN corridor END AS corridor,
    CASE WHEN error_code IS NULL THEN actor_id END AS actor_id,
    created_at,
    CASE WHEN error_code IS NULL THEN array_to_string(list_sort(coalesce(primitives, [])), ',') END AS primitives,
    error_code,
    coalesce(frame_detail, CASE error_code
        WHEN 'malformed_json' THEN 'the line is not valid JSON'
        WHEN 'not_an_object' THEN 'the line is JSON but not an object'
        WHEN 'duplicate_json_key' THEN 'an object repeats a key'
        WHEN 'missing_field' THEN 'a required field is absent or null'
        WHEN 'invalid_field_type' THEN 'a field has the wrong JSON type'
        WHEN 'invalid_identifier' THEN 'an identifier does not match the contract pattern'
        WHEN 'invalid_timestamp' THEN 'created_at is not an ISO 8601 timestamp'
        WHEN 'kind_unknown' THEN 'kind is not payment, transfer, payout or card'
        WHEN 'amount_missing' THEN 'amount_minor is absent or null'
        WHEN 'amount_boolean' THEN 'amount_minor is a boolean'
        WHEN 'amount_string' THEN 'amount_minor is a string, never coerced'
        WHEN 'amount_out_of_range' THEN 'amount_minor is an integer outside signed 64-bit'
        WHEN 'amount_float' THEN 'amount_minor is a JSON float, never coerced'
        WHEN 'amount_invalid' THEN 'amount_minor is not a number'
        WHEN 'currency_unknown' THEN 'currency or ledger_currency is not an ISO 4217 code'
        WHEN 'corridor_invalid' THEN 'corridor is not <currency>:<RAIL>:<ledger_currency>'
    END) AS detail,
    -- a typed struct, serialised as JSON: NULLs and separators can never collide
    CASE WHEN error_code IS NULL THEN sha256(to_json({'tenant_id': tenant_id, 'intent_id': intent_id,
        'scope': scope, 'kind': kind, 'amount_minor': try_cast(amount_s AS BIGINT), 'currency': currency,
        'ledger_currency': ledger_currency, 'corridor': corridor, 'actor_id': actor_id,
        'created_at': created_at, 'primitives': primitives})::VARCHAR) END AS content_hash
FROM judged
ORDER BY source_file, line_no
