-- provider_state must hold exactly one row per (tenant, provider, provider_ref).
SELECT tenant_id, provider, provider_ref, count(*) AS n
FROM provider_state
GROUP BY ALL
HAVING count(*) > 1
ORDER BY ALL
