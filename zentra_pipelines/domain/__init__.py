"""Pure core: deterministic functions over Polars frames and plain values.

No clock, no environment, no files, no database: ``as_of`` dates, versions and
configuration come in as arguments so the same inputs always give the same bytes.
"""
