"""Names shared by the asset folders: groups follow the product's lifecycle."""

OWNERS = ["team:finance-ops"]
POOL = "zentra_warehouse"  # one writer at a time for the DuckDB file

ACCEPTED = "accepted"
CONTROLLED = "controlled"
LEDGERED = "ledgered"
ROUTED = "routed"
SYNCHRONIZED = "synchronized"
EVIDENCED = "evidenced"

#: Asset groups as the finance team reads the graph, left to right.
GROUPS = (
    "ingest",
    "controls",
    "ledger",
    "routing",
    "events",
    "reconciliation",
    "evidence",
)
#: Values of the ``lifecycle`` tag, in the order a payment earns them.
STAGES = (ACCEPTED, CONTROLLED, LEDGERED, ROUTED, SYNCHRONIZED, EVIDENCED)

#: The one partitioned asset: everything upstream of it rebuilds the full state.
PACKETS_ASSET = "audit_packets"


def zentra_asset(group: str, lifecycle: str, *, kinds: set[str] | None = None, **kwargs):
    """``@dg.asset`` with what every Zentra asset shares: its layer group, the finance-ops
    owner, the single-writer warehouse pool and its lifecycle tag."""
    import dagster as dg

    return dg.asset(
        group_name=group,
        kinds=kinds or {"polars", "duckdb"},
        owners=OWNERS,
        pool=POOL,
        tags={"lifecycle": lifecycle},
        **kwargs,
    )


def zentra_spec(key: str, group: str, lifecycle: str, *, kinds: set[str] | None = None, **kwargs):
    """The same conventions for one spec of a multi-asset."""
    import dagster as dg

    return dg.AssetSpec(
        key,
        group_name=group,
        kinds=kinds or {"polars", "duckdb"},
        owners=OWNERS,
        tags={"lifecycle": lifecycle},
        **kwargs,
    )
