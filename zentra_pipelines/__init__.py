"""Zentra domain library: money movement made legible.

Pure stages live in :mod:`zentra_pipelines.domain` (frames in, frames out, no I/O);
DuckDB, SQLAlchemy and file-system work lives in :mod:`zentra_pipelines.adapters`.
Nothing here imports Dagster: the orchestration layer is ``dagster_project``.
"""

__version__ = "0.1.0"
