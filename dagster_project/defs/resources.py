"""The one resource every asset uses: where the run reads and writes.

Empty fields fall back to ZENTRA_* environment variables and then to the bundled
sample, resolved when a run starts (never at import), so `dagster dev` and
`zentra run` execute the very same definitions.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from zentra_pipelines.adapters.home_lock import exclusive_home
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.settings import Settings


class ZentraResource(dg.ConfigurableResource):
    landing: str = ""
    source_db: str = ""
    policies: str = ""
    secrets: str = ""
    home: str = ""

    def settings(self) -> Settings:
        return Settings.resolve(
            {"landing": self.landing, "source_db": self.source_db, "policies": self.policies,
             "secrets": self.secrets, "home": self.home},
            os.environ,
        )

    @contextmanager
    def warehouse(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse, with the home held for the step (``home_lock``): a step run by
        the UI while ``zentra run`` holds the home fails at once naming that run, rather
        than slipping in between its steps; under ``zentra run`` (which holds it already)
        this costs nothing."""
        home = self.settings().home
        with exclusive_home(home), Warehouse(home).connect() as con:
            yield con


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"zentra": ZentraResource()})
