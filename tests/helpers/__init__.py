"""Shared builders for tests (no test collection here)."""
