-- Landing files whose rows are not all accounted for.
SELECT source, source_file, received, accepted, quarantined
FROM ingest_accounting
WHERE received <> accepted + quarantined
ORDER BY ALL
