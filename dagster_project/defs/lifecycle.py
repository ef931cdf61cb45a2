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
GROUPS = ("ingest", "controls", "ledger", "routing", "events", "reconciliation", "evidence")
#: Values of the ``lifecycle`` tag, in the order a payment earns them.
STAGES = (ACCEPTED, CONTROLLED, LEDGERED, ROUTED, SYNCHRONIZED, EVIDENCED)

#: The one partitioned asset: everything upstream of it rebuilds the full state.
PACKETS_ASSET = "audit_packets"
