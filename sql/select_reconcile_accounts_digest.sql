-- A digest of ledger_accounts in table order (every column of every row): part of the version the
-- cached intent ledger view is valid for (the view types each entry by its account).
SELECT md5(coalesce(string_agg(CAST(hash(a) AS VARCHAR), ',' ORDER BY rowid), '')) || ':' || count(*)
FROM ledger_accounts AS a
