-- Verify framed callback lines: envelope, Standard Webhooks signature, replay window,
-- body upcast (2026-01-01 flat | 2026-06-01 nested) and money checks.
-- Inputs (registered views): callback_lines_new(source_file, file_sha256, line_no, text,
-- frame_error, frame_detail), webhook_secrets(tenant_id, provider, ikey BLOB, okey BLOB)
-- where ikey/okey are the HMAC-SHA256 inner/outer padded keys (secrets never enter SQL text).
-- The first failing check wins; its order is documented in docs/error-codes.md.
WITH valid AS (
    -- Guard once: every JSON function below sees NULL, never unparsable text (DuckDB may
    -- hoist common subexpressions out of a CASE, so guards inside CASEs are not enough).
    SELECT l.*, CASE WHEN json_valid(l.text) THEN l.text END AS j
    FROM callback_lines_new AS l
),
envelope AS (
    SELECT
        source_file, file_sha256, line_no, frame_error, frame_detail,
        j IS NOT NULL AS is_json,
        json_type(j) AS top_type,
        CASE WHEN json_type(j) = 'OBJECT'
             THEN json_extract(j, ['$.received_at', '$.tenant_id', '$.provider', '$.headers', '$.body'])
        END AS f,
        CASE WHEN json_type(j) = 'OBJECT' THEN len(json_keys(j)) <> len(list_distinct(json_keys(j))) END AS dup_keys
    FROM valid
),
fields AS (
    SELECT *,
        json_type(f[1]) AS t_received_at, f[1] ->> '$' AS received_at_s,
        json_type(f[2]) AS t_tenant, f[2] ->> '$' AS tenant_id,
        json_type(f[3]) AS t_provider, f[3] ->> '$' AS provider,
        json_type(f[4]) AS t_headers,
        json_type(f[5]) AS t_body, f[5] ->> '$' AS body
    FROM envelope
),
headers AS (
    SELECT *,
        CASE WHEN t_headers = 'OBJECT' THEN
            json_extract(f[4], ['$."webhook-id"', '$."webhook-timestamp"', '$."webhook-signature"'])
        END AS h,
        CASE WHEN t_headers = 'OBJECT' THEN
            len(json_keys(f[4])) <> len(list_distinct(json_keys(f[4])))
        END AS dup_header_keys
    FROM fields
),
env2 AS (
    SELECT *,
        json_type(h[1]) AS t_wid, h[1] ->> '$' AS webhook_id,
        json_type(h[2]) AS t_wts, h[2] ->> '$' AS webhook_timestamp_s,
        json_type(h[3]) AS t_wsig, h[3] ->> '$' AS webhook_signature,
        iso_utc(received_at_s) AS received_at
    FROM headers
),
signatures AS MATERIALIZED (  -- read by `matched` and `body`: computed once
    SELECT e.*,
        CASE WHEN regexp_full_match(webhook_timestamp_s, '[0-9]{1,12}')
             THEN try_cast(webhook_timestamp_s AS BIGINT) END AS webhook_timestamp,
        list_filter(string_split(coalesce(webhook_signature, ''), ' '),
                    lambda s: regexp_full_match(s, 'v1,[A-Za-z0-9+/]{43}=')) AS v1_signatures
    FROM env2 AS e
),
matched AS (
    -- One row per (line, configured secret): rotation means any secret may match.
    SELECT s.file_sha256, s.line_no,
        bool_or(list_contains(s.v1_signatures,
            'v1,' || to_base64(unhex(sha256(k.okey || unhex(sha256(
                k.ikey || encode(s.webhook_id || '.' || s.webhook_timestamp_s || '.' || s.body)))))))) AS signature_ok,
        count(*) AS secrets
    FROM signatures AS s
    JOIN webhook_secrets AS k ON k.tenant_id = s.tenant_id AND k.provider = s.provider
    WHERE s.t_body = 'VARCHAR' AND len(s.v1_signatures) > 0
      AND s.t_wid = 'VARCHAR' AND s.t_wts = 'VARCHAR'
    GROUP BY ALL
),
known_tenants AS (
    SELECT DISTINCT tenant_id, provider FROM webhook_secrets
),
body AS (
    SELECT s.*, m.signature_ok, kt.tenant_id IS NOT NULL AS tenant_known,
        CASE WHEN json_valid(s.body) THEN s.body END AS bj
    FROM signatures AS s
    LEFT JOIN matched AS m USING (file_sha256, line_no)
    LEFT JOIN known_tenants AS kt ON kt.tenant_id = s.tenant_id AND kt.provider = s.provider
),
body_checked AS (
    SELECT *, coalesce(json_type(bj) = 'OBJECT', false) AS body_ok FROM body
),
body_fields AS (
    SELECT *,
        CASE WHEN body_ok THEN json_extract(bj, [
            '$.api_version', '$.event_id', '$.type', '$.occurred_at', '$.sequence',
            '$.intent_id', '$.provider_ref', '$.amount_minor', '$.currency',
            '$.object.intent_id', '$.object.provider_ref', '$.object.amount.value', '$.object.amount.currency',
            '$.object', '$.object.amount'])
        END AS b,
        CASE WHEN body_ok THEN
            len(json_keys(bj)) <> len(list_distinct(json_keys(bj)))
            OR coalesce(json_type(bj, '$.object') = 'OBJECT'
                AND len(json_keys(bj, '$.object')) <> len(list_distinct(json_keys(bj, '$.object'))), false)
            OR coalesce(json_type(bj, '$.object.amount') = 'OBJECT'
                AND len(json_keys(bj, '$.object.amount')) <> len(list_distinct(json_keys(bj, '$.object.amount'))), false)
        END AS dup_body_keys
    FROM body_checked
),
canonical AS (
    SELECT *,
        b[1] ->> '$' AS api_version, json_type(b[1]) AS t_api_version,
        b[2] ->> '$' AS event_id, json_type(b[2]) AS t_event_id,
        b[3] ->> '$' AS type, json_type(b[3]) AS t_type,
        b[4] ->> '$' AS occurred_at_s, json_type(b[4]) AS t_occurred_at,
        json_type(b[5]) AS t_sequence, b[5] ->> '$' AS sequence_s,
        CASE WHEN b[1] ->> '$' = '2026-06-01' THEN b[10] ELSE b[6] END AS j_intent_id,
        CASE WHEN b[1] ->> '$' = '2026-06-01' THEN b[11] ELSE b[7] END AS j_provider_ref,
        CASE WHEN b[1] ->> '$' = '2026-06-01' THEN b[12] ELSE b[8] END AS j_amount,
        CASE WHEN b[1] ->> '$' = '2026-06-01' THEN b[13] ELSE b[9] END AS j_currency,
        json_type(b[14]) AS t_object, json_type(b[15]) AS t_amount_object
    FROM body_fields
),
typed AS (
    SELECT *,
        j_intent_id ->> '$' AS intent_id, json_type(j_intent_id) AS t_intent_id,
        j_provider_ref ->> '$' AS provider_ref, json_type(j_provider_ref) AS t_provider_ref,
        json_type(j_amount) AS t_amount, j_amount ->> '$' AS amount_s,
        j_currency ->> '$' AS currency, json_type(j_currency) AS t_currency,
        iso_utc(occurred_at_s) AS occurred_at
    FROM canonical
),
judged AS (
    SELECT *,
        CASE
            WHEN frame_error IS NOT NULL THEN frame_error
            WHEN NOT is_json THEN 'malformed_json'
            WHEN top_type <> 'OBJECT' THEN 'not_an_object'
            WHEN dup_keys OR coalesce(dup_header_keys, false) THEN 'duplicate_json_key'
            WHEN t_received_at IS NULL OR t_tenant IS NULL OR t_provider IS NULL OR t_headers IS NULL OR t_body IS NULL
              OR t_received_at = 'NULL' OR t_tenant = 'NULL' OR t_provider = 'NULL' OR t_headers = 'NULL' OR t_body = 'NULL'
                THEN 'missing_field'
            WHEN t_received_at <> 'VARCHAR' OR t_tenant <> 'VARCHAR' OR t_provider <> 'VARCHAR'
              OR t_headers <> 'OBJECT' OR t_body <> 'VARCHAR' THEN 'invalid_field_type'
            WHEN received_at IS NULL THEN 'invalid_timestamp'
            WHEN NOT regexp_full_match(tenant_id, $identifier) OR NOT regexp_full_match(provider, $identifier)
                THEN 'invalid_identifier'
            WHEN NOT tenant_known THEN 'unknown_tenant'
            WHEN t_wid IS NULL OR t_wts IS NULL OR t_wsig IS NULL THEN 'header_missing'
            WHEN t_wid <> 'VARCHAR' OR t_wts <> 'VARCHAR' OR t_wsig <> 'VARCHAR' THEN 'invalid_field_type'
            WHEN NOT regexp_full_match(webhook_id, $identifier) THEN 'invalid_identifier'
            WHEN webhook_timestamp IS NULL THEN 'timestamp_invalid'
            WHEN len(v1_signatures) = 0 THEN 'signature_malformed'
            WHEN NOT coalesce(signature_ok, false) THEN 'signature_mismatch'
            WHEN abs(epoch_us(received_at) - webhook_timestamp * 1000000) > $max_skew_ms * 1000 THEN 'replay_window'
            WHEN NOT body_ok THEN 'body_malformed_json'
            WHEN dup_body_keys THEN 'duplicate_json_key'
            WHEN t_api_version IS DISTINCT FROM 'VARCHAR' OR api_version NOT IN ('2026-01-01', '2026-06-01')
                THEN 'unsupported_api_version'
            WHEN api_version = '2026-06-01' AND (t_object IS DISTINCT FROM 'OBJECT' OR t_amount_object IS DISTINCT FROM 'OBJECT')
                THEN CASE WHEN t_object IS NULL OR t_amount_object IS NULL THEN 'missing_field' ELSE 'invalid_field_type' END
            WHEN t_event_id IS NULL OR t_type IS NULL OR t_intent_id IS NULL OR t_provider_ref IS NULL
              OR t_currency IS NULL OR t_occurred_at IS NULL OR t_sequence IS NULL
              OR 'NULL' IN (t_event_id, t_type, t_intent_id, t_provider_ref, t_currency, t_occurred_at, t_sequence)
                THEN 'missing_field'
            WHEN t_event_id <> 'VARCHAR' OR t_type <> 'VARCHAR' OR t_intent_id <> 'VARCHAR'
              OR t_provider_ref <> 'VARCHAR' OR t_currency <> 'VARCHAR' OR t_occurred_at <> 'VARCHAR'
                THEN 'invalid_field_type'
            WHEN NOT regexp_full_match(event_id, $identifier) OR NOT regexp_full_match(intent_id, $identifier)
              OR NOT regexp_full_match(provider_ref, $identifier) THEN 'invalid_identifier'
            WHEN type NOT IN ('payment.authorized', 'payment.captured', 'payment.settled', 'payment.failed',
                              'payment.refunded', 'payout.paid', 'payout.failed') THEN 'unknown_event_type'
            WHEN t_amount IS NULL OR t_amount = 'NULL' THEN 'amount_missing'
            WHEN t_amount = 'BOOLEAN' THEN 'amount_boolean'
            WHEN t_amount = 'VARCHAR' THEN 'amount_string'
            -- yyjson types non-negative integers UBIGINT, negative BIGINT, and keeps integers
            -- beyond 64 bits as raw text typed DOUBLE: only the literal tells them from floats.
            WHEN t_amount IN ('BIGINT', 'UBIGINT') AND try_cast(amount_s AS BIGINT) IS NULL THEN 'amount_out_of_range'
            WHEN t_amount = 'DOUBLE' AND regexp_full_match(amount_s, '-?[0-9]+') THEN 'amount_out_of_range'
            WHEN t_amount = 'DOUBLE' THEN 'amount_float'
            WHEN t_amount NOT IN ('BIGINT', 'UBIGINT') THEN 'amount_invalid'
            WHEN currency NOT IN (SELECT currency FROM iso_currencies) THEN 'currency_unknown'
            WHEN t_sequence NOT IN ('BIGINT', 'UBIGINT') OR coalesce(try_cast(sequence_s AS BIGINT) < 0, true) THEN 'sequence_invalid'
            WHEN occurred_at IS NULL THEN 'invalid_timestamp'
        END AS error_code
    FROM typed
)
SELECT
    source_file, file_sha256, line_no,
    CASE WHEN t_tenant = 'VARCHAR' AND regexp_full_match(tenant_id, $identifier) THEN tenant_id END AS tenant_id,
    CASE WHEN t_provider = 'VARCHAR' AND regexp_full_match(provider, $identifier) THEN provider END AS provider,
    received_at,
    CASE WHEN error_code IS NULL THEN webhook_id END AS webhook_id,
    CASE WHEN error_code IS NULL THEN webhook_timestamp END AS webhook_timestamp,
    CASE WHEN error_code IS NULL THEN api_version END AS api_version,
    CASE WHEN error_code IS NULL THEN event_id END AS event_id,
    CASE WHEN error_code IS NULL THEN type END AS type,
    CASE WHEN error_code IS NULL THEN intent_id END AS intent_id,
    CASE WHEN error_code IS NULL THEN provider_ref END AS provider_ref,
    CASE WHEN error_code IS NULL THEN try_cast(amount_s AS BIGINT) END AS amount_minor,
    CASE WHEN error_code IS NULL THEN currency END AS currency,
    CASE WHEN error_code IS NULL THEN try_cast(sequence_s AS BIGINT) END AS sequence,
    CASE WHEN error_code IS NULL THEN occurred_at END AS occurred_at,
    error_code,
    CASE error_code
        WHEN 'missing_field' THEN 'a required field is absent or null'
        WHEN 'invalid_field_type' THEN 'a field has the wrong JSON type'
        WHEN 'invalid_timestamp' THEN 'received_at or occurred_at is not an ISO 8601 timestamp'
        WHEN 'invalid_identifier' THEN 'an identifier does not match the contract pattern'
        WHEN 'unknown_tenant' THEN 'no webhook secret configured for this tenant and provider'
        WHEN 'header_missing' THEN 'webhook-id, webhook-timestamp or webhook-signature is absent'
        WHEN 'timestamp_invalid' THEN 'webhook-timestamp is not whole Unix seconds'
        WHEN 'signature_malformed' THEN 'webhook-signature holds no v1,<base64> entry'
        WHEN 'signature_mismatch' THEN 'no v1 signature matches a secret of this tenant and provider'
        WHEN 'replay_window' THEN 'received_at and webhook-timestamp differ by '
            || ((epoch_ms(received_at) - webhook_timestamp * 1000) // 1000)::VARCHAR || ' s (limit 300 s)'
        WHEN 'body_malformed_json' THEN 'the signed body is not a JSON object'
        WHEN 'duplicate_json_key' THEN 'an object repeats a key'
        WHEN 'unsupported_api_version' THEN 'api_version is not 2026-01-01 or 2026-06-01'
        WHEN 'unknown_event_type' THEN 'type is not a contract event type'
        WHEN 'amount_missing' THEN 'amount is absent or null'
        WHEN 'amount_boolean' THEN 'amount is a boolean'
        WHEN 'amount_string' THEN 'amount is a string, never coerced'
        WHEN 'amount_out_of_range' THEN 'amount is an integer outside signed 64-bit'
        WHEN 'amount_float' THEN 'amount is a JSON float, never coerced'
        WHEN 'amount_invalid' THEN 'amount is not a number'
        WHEN 'currency_unknown' THEN 'currency is not an ISO 4217 code'
        WHEN 'sequence_invalid' THEN 'sequence is not a non-negative 64-bit integer'
        WHEN 'malformed_json' THEN 'the line is not valid JSON'
        WHEN 'not_an_object' THEN 'the line is JSON but not an object'
        ELSE frame_detail
    END AS detail,
    CASE WHEN error_code IS NULL THEN sha256(concat_ws('|', event_id, type, intent_id, provider_ref,
        amount_s, currency, sequence_s, strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ'))) END AS content_hash
FROM judged
ORDER BY source_file, line_no
