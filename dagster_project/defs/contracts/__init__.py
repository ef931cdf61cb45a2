"""Data contracts of the landing sources (Great Expectations 1.x)."""
