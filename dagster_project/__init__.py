"""Thin Dagster wiring for Zentra: assets call zentra_pipelines, nothing more."""
