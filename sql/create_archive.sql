-- Append-only archive tables: created once, never rewritten.
CREATE TABLE IF NOT EXISTS landing_files (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL,
    bytes BIGINT NOT NULL, lines BIGINT NOT NULL, duplicate_of VARCHAR
);
CREATE TABLE IF NOT EXISTS landing_lines (
    source_file VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL, line_no BIGINT NOT NULL,
    text VARCHAR, raw BLOB, frame_error VARCHAR, frame_detail VARCHAR, source VARCHAR NOT NULL
);
-- The fingerprint of the webhook keys callback_checked was last judged with (ingest.keys_fingerprint).
CREATE TABLE IF NOT EXISTS callback_keys_judged (fingerprint VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS callback_checked (
    source_file VARCHAR, file_sha256 VARCHAR, line_no BIGINT, tenant_id VARCHAR, provider VARCHAR,
    received_at TIMESTAMP, webhook_id VARCHAR, webhook_timestamp BIGINT, api_version VARCHAR,
    event_id VARCHAR, type VARCHAR, intent_id VARCHAR, provider_ref VARCHAR, amount_minor BIGINT,
    currency VARCHAR, sequence BIGINT, occurred_at TIMESTAMP, error_code VARCHAR, detail VARCHAR,
    content_hash VARCHAR
);
