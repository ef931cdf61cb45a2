-- Verify framed callback lines: envelope, Standard Webhooks signature, replay window,
-- body upcast (2026-01-01 flat | 2026-06-01 nested) and money checks.
-- Inputs (registered views): callback_lines_new(source_file, file_sha256, line_no, text,
-- frame_error, frame_detail), webhook_secrets(tenant_id, provider, ikey BLOB, okey BLOB)
-- where ikey/okey are the HMAC-SHA256 inner/outer padded keys (secrets never enter SQL text).
-- The first failing check wins; its order is documented in docs/error-codes.md.
WITH valid AS (
    -- Guard once: every JSON function below sees NULL, never unparsable text (DuckDB may
    -- hoist common subexpressions out of a CASE, so guards inside CASEs are not enough).
    SELECT l.*, CASE WHEN json_strict_valid(json_text(l.text, l.line_no)) THEN json_text(l.text, l.line_no) END AS j
    FROM callback_lines_new AS l
),
envelope AS (
    -- Each JSON function parses its whole input again, so every field is asked for in one
    -- call per function (a list of paths): the line is parsed four times, not once per
    -- field (json_valid, types, string values, keys). A path under a non-object, or a
    -- missing one, gives NULL, as extracting from the parent first did.
    SELECT source_file, file_sha256, line_no, frame_error, frame_detail,
        j IS NOT NULL AS is_json,
        json_type(j, ['$', '$.received_at', '$.tenant_id', '$.provider', '$.headers', '$.body',
                      '$.headers."webhook-id"', '$.headers."webhook-timestamp"', '$.headers."webhook-signature"']) AS t,
        json_extract_string(j, ['$.received_at', '$.tenant_id', '$.provider', '$.body',
                      '$.headers."webhook-id"', '$.headers."webhook-timestamp"', '$.headers."webhook-signature"']) AS v,
        json_keys(j, ['$', '$.headers']) AS k,
        j
    FROM valid
),
header_entries AS (
    -- HTTP header names are case-insensitive (RFC 9110): a receiver may log "Webhook-Id".
    -- Only a headers object whose keys are not exactly the three lowercase names (rare)
    -- is parsed again, into (name, JSON value) entries.
    SELECT e.* EXCLUDE (j),
        CASE WHEN t[5] = 'OBJECT' AND NOT (len(k[2]) = 3 AND
                  list_has_all(k[2], ['webhook-id', 'webhook-timestamp', 'webhook-signature']))
             THEN map_entries(json_transform(json_extract(j, '$.headers'), '"MAP(VARCHAR, JSON)"')) END AS hs
    FROM envelope AS e
),
headers_any_case AS (
    SELECT e.* EXCLUDE (hs),
        list_filter(hs, lambda h: lower(h.key) = 'webhook-id')[1].value AS hj_wid,
        list_filter(hs, lambda h: lower(h.key) = 'webhook-timestamp')[1].value AS hj_wts,
        list_filter(hs, lambda h: lower(h.key) = 'webhook-signature')[1].value AS hj_wsig
    FROM header_entries AS e
),
env2 AS (
    -- A repeated key is found by counting distinct keys; a key list as long as one of the
    -- contract's key sets and holding all of it has no repeat (pigeonhole), so the usual
    -- line skips the count.
    SELECT source_file, file_sha256, line_no, frame_error, frame_detail, is_json,
        t[1] AS top_type,
        CASE WHEN t[1] = 'OBJECT' THEN CASE WHEN len(k[1]) = 5 AND list_has_all(k[1], ['received_at', 'tenant_id', 'provider', 'headers', 'body']) THEN false ELSE len(k[1]) <> len(list_distinct(k[1])) END END AS dup_keys,
        t[2] AS t_received_at, v[1] AS received_at_s,
        t[3] AS t_tenant, v[2] AS tenant_id,
        t[4] AS t_provider, v[3] AS provider,
        t[5] AS t_headers,
        t[6] AS t_body, v[4] AS body,
        -- a name given twice, in any case ("webhook-id" and "Webhook-Id"), is a repeated key
        CASE WHEN t[5] = 'OBJECT' THEN CASE WHEN len(k[2]) = 3 AND list_has_all(k[2], ['webhook-id', 'webhook-timestamp', 'webhook-signature']) THEN false ELSE len(k[2]) <> len(list_distinct(list_transform(k[2], lambda n: lower(n)))) END END AS dup_header_keys,
        coalesce(t[7], json_type(hj_wid)) AS t_wid, coalesce(v[5], json_extract_string(hj_wid, '$')) AS webhook_id,
        coalesce(t[8], json_type(hj_wts)) AS t_wts, coalesce(v[6], json_extract_string(hj_wts, '$')) AS webhook_timestamp_s,
        coalesce(t[9], json_type(hj_wsig)) AS t_wsig, coalesce(v[7], json_extract_string(hj_wsig, '$')) AS webhook_signature,
        iso_utc(v[1]) AS received_at,
        -- checked once: the verdict reads them and so do the tenant_id/provider columns of every line
        regexp_full_match(v[2], $identifier) AS tenant_id_ok,
        regexp_full_match(v[3], $identifier) AS provider_ok
    FROM headers_any_case
),
signatures AS (
    SELECT e.*,
        CASE WHEN regexp_full_match(webhook_timestamp_s, '[0-9]{1,12}')
             THEN try_cast(webhook_timestamp_s AS BIGINT) END AS webhook_timestamp,
        list_filter(string_split(coalesce(webhook_signature, ''), ' '),
                    lambda s: regexp_full_match(s, 'v1,[A-Za-z0-9+/]{43}=')) AS v1_signatures
    FROM env2 AS e
),
keyring AS (
    -- every configured secret of a (tenant, provider): rotation means any of them may match
    SELECT tenant_id, provider, list(ikey ORDER BY secret_index) AS ikeys, list(okey ORDER BY secret_index) AS okeys
    FROM webhook_secrets
    GROUP BY tenant_id, provider
),
body AS (
    -- The first secret is tried alone, the others only for a line it does not sign (a CASE
    -- evaluates a branch for the rows that reach it): most lines cost one HMAC, not one
    -- per configured secret.
    SELECT s.*,
        CASE WHEN s.t_body = 'VARCHAR' AND len(s.v1_signatures) > 0 AND s.t_wid = 'VARCHAR' AND s.t_wts = 'VARCHAR' THEN
            CASE WHEN list_contains(s.v1_signatures, 'v1,' || to_base64(unhex(sha256(kr.okeys[1] || unhex(sha256(
                    kr.ikeys[1] || encode(s.webhook_id || '.' || s.webhook_timestamp_s || '.' || s.body)))))))
                THEN true
            WHEN len(kr.ikeys) > 1 THEN
                list_bool_or(list_transform(list_zip(kr.ikeys[2:], kr.okeys[2:]), lambda k: list_contains(s.v1_signatures,
                    'v1,' || to_base64(unhex(sha256(k[2] || unhex(sha256(
                        k[1] || encode(s.webhook_id || '.' || s.webhook_timestamp_s || '.' || s.body)))))))))
            ELSE false END
        END AS signature_ok,
        kr.ikeys IS NOT NULL AS tenant_known,
        CASE WHEN json_strict_valid(s.body) THEN s.body END AS bj
    FROM signatures AS s
    LEFT JOIN keyring AS kr ON kr.tenant_id = s.tenant_id AND kr.provider = s.provider
),
body_fields AS (
    -- as for the envelope: one call per JSON function over the body, a list of paths each
    SELECT *,
        json_type(bj, ['$', '$.api_version', '$.event_id', '$.type', '$.occurred_at', '$.sequence',
            '$.intent_id', '$.provider_ref', '$.amount_minor', '$.currency',
            '$.object.intent_id', '$.object.provider_ref', '$.object.amount.value', '$.object.amount.currency',
            '$.object', '$.object.amount']) AS bt,
        json_extract_string(bj, ['$.api_version', '$.event_id', '$.type', '$.occurred_at', '$.sequence',
            '$.intent_id', '$.provider_ref', '$.amount_minor', '$.currency',
            '$.object.intent_id', '$.object.provider_ref', '$.object.amount.value', '$.object.amount.currency']) AS bv,
        json_keys(bj, ['$', '$.object', '$.object.amount']) AS bk
    FROM body
),
body_checked AS (
    SELECT *,
        coalesce(bt[1] = 'OBJECT', false) AS body_ok
    FROM body_fields
),
canonical AS (
    -- A body that is valid JSON but no object gives NULL for every key path, as when the
    -- fields were only extracted from an object body: no body_ok guard is needed on them.
    SELECT *,
        CASE WHEN body_ok THEN
            CASE WHEN len(bk[1]) = 9 AND list_has_all(bk[1], ['api_version', 'event_id', 'type', 'intent_id', 'provider_ref', 'amount_minor', 'currency', 'sequence', 'occurred_at']) THEN false WHEN len(bk[1]) = 6 AND list_has_all(bk[1], ['api_version', 'event_id', 'type', 'occurred_at', 'sequence', 'object']) THEN false ELSE len(bk[1]) <> len(list_distinct(bk[1])) END
            OR coalesce(bt[15] = 'OBJECT' AND CASE WHEN len(bk[2]) = 3 AND list_has_all(bk[2], ['intent_id', 'provider_ref', 'amount']) THEN false ELSE len(bk[2]) <> len(list_distinct(bk[2])) END, false)
            OR coalesce(bt[16] = 'OBJECT' AND CASE WHEN len(bk[3]) = 2 AND list_has_all(bk[3], ['value', 'currency']) THEN false ELSE len(bk[3]) <> len(list_distinct(bk[3])) END, false)
        END AS dup_body_keys,
        bv[1] AS api_version, bt[2] AS t_api_version,
        bv[2] AS event_id, bt[3] AS t_event_id,
        bv[3] AS type, bt[4] AS t_type,
        bv[4] AS occurred_at_s, bt[5] AS t_occurred_at,
        bt[6] AS t_sequence, bv[5] AS sequence_s,
        -- the 2026-06-01 body nests the money under object (upcast to the flat shape)
        CASE WHEN bv[1] = '2026-06-01' THEN bt[11] ELSE bt[7] END AS t_intent_id,
        CASE WHEN bv[1] = '2026-06-01' THEN bv[10] ELSE bv[6] END AS intent_id,
        CASE WHEN bv[1] = '2026-06-01' THEN bt[12] ELSE bt[8] END AS t_provider_ref,
        CASE WHEN bv[1] = '2026-06-01' THEN bv[11] ELSE bv[7] END AS provider_ref,
        CASE WHEN bv[1] = '2026-06-01' THEN bt[13] ELSE bt[9] END AS t_amount,
        CASE WHEN bv[1] = '2026-06-01' THEN bv[12] ELSE bv[8] END AS amount_s,
        CASE WHEN bv[1] = '2026-06-01' THEN bt[14] ELSE bt[10] END AS t_currency,
        CASE WHEN bv[1] = '2026-06-01' THEN bv[13] ELSE bv[9] END AS currency,
        bt[15] AS t_object, bt[16] AS t_amount_object
    FROM body_checked
),
typed AS (
    SELECT *, iso_utc(occurred_at_s) AS occurred_at FROM canonical
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
            WHEN NOT tenant_id_ok OR NOT provider_ok
                THEN 'invalid_identifier'
            WHEN NOT tenant_known THEN 'unknown_tenant'
            -- a header given as JSON null is as absent as a missing one, whatever its name's case
            WHEN t_wid IS NULL OR t_wts IS NULL OR t_wsig IS NULL
              OR t_wid = 'NULL' OR t_wts = 'NULL' OR t_wsig = 'NULL' THEN 'header_missing'
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
    CASE WHEN t_tenant = 'VARCHAR' AND tenant_id_ok THEN tenant_id END AS tenant_id,
    CASE WHEN t_provider = 'VARCHAR' AND provider_ok THEN provider END AS provider,
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
        -- the exact gap (to the microsecond, no float): 300.5 s must not read as "300 s"
        WHEN 'replay_window' THEN 'received_at and webhook-timestamp differ by '
            || CASE WHEN epoch_us(received_at) < webhook_timestamp * 1000000 THEN '-' ELSE '' END
            || rtrim(rtrim((abs(epoch_us(received_at) - webhook_timestamp * 1000000) // 1000000)::VARCHAR || '.'
                || lpad((abs(epoch_us(received_at) - webhook_timestamp * 1000000) % 1000000)::VARCHAR, 6, '0'), '0'), '.')
            || ' s (limit ' || ($max_skew_ms // 1000)::VARCHAR || ' s)'
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
