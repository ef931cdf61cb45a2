"""I/O at the edges: DuckDB warehouse, SQLAlchemy ledger source, landing files, packet store."""
