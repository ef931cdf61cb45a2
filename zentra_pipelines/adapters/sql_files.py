"""SQL lives in files named verb_object.sql under the repository's ``sql/`` folder.

Values always travel as bind parameters ($name); table names never come from data.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import zentra_pipelines

SQL_DIR = Path(zentra_pipelines.__file__).resolve().parent.parent / "sql"


@lru_cache(maxsize=None)
def load_sql(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad SQL file name {name!r}")
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} is missing (is the package installed editable?)")
    return path.read_text("utf-8")


def ensure_macros(con) -> None:
    """Create the shared TEMP macros (sql/create_macros.sql) on this connection."""
    con.execute(load_sql("create_macros"))
