"""Names shared by the asset folders: groups follow the product's lifecycle."""

OWNERS = ["team:finance-ops"]
POOL = "zentra_warehouse"  # one writer at a time for the DuckDB file

ACCEPTED = "accepted"
CONTROLLED = "controlled"
LEDGERED = "ledgered"
ROUTED = "routed"
SYNCHRONIZED = "synchronized"
EVIDENCED = "evidenced"
