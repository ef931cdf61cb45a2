-- The incremental timeline: the published rows of the kept intents (_timeline_kept: tenant_id,
-- intent_id) and the rows rebuilt for the others (_timeline_rebuilt, _pos = their order), as a
-- full rebuild lays them out: tenants in order, each tenant's intents by intent_id, each
-- intent's rows in their order (published rows in table order, rebuilt rows by _pos). No
-- intent is on both sides; should one be, its published rows come first (_side).
SELECT * EXCLUDE (_side, _pos)
FROM (
    SELECT t.*, 0 AS _side, t.rowid AS _pos
    FROM intent_timeline AS t
    SEMI JOIN _timeline_kept AS k ON t.tenant_id = k.tenant_id AND t.intent_id = k.intent_id
    UNION ALL BY NAME
    SELECT *, 1 AS _side
    FROM _timeline_rebuilt
)
ORDER BY tenant_id, intent_id, _side, _pos
