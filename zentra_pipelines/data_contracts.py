"""Data contracts of the landing sources, validated with Great Expectations 1.x.

One GX expectation suite per published source table (contract section 2): the columns
and their types, non-null and unique keys, identifier and currency formats, value sets,
ranges and settlement arithmetic. Every run publishes the verdicts over every row of every
table (incremental runs reuse GX's earlier counts for unchanged tenant-days, see
``run_data_contracts``):

* ``data_contract_results``: one row per (source, expectation), counts only, and
* ``data_contract_results_by_tenant``: the same expectations per tenant and UTC day,
  so a tenant-day evidence packet can seal its own contract results.

Neither table holds an unexpected *value*: GX reports samples of failing values, and
those could carry another tenant's ids into evidence. Only counts and schema facts
(dtype names, column names) are kept.

Levels
  ``structure`` — the table's shape: column set, column types, non-null and unique keys.
  A failure means the table cannot be trusted at all (a blocking check).
  ``value`` — row contents: identifier and currency formats, value sets, ranges, the
  settlement arithmetic. A failure is a finding to investigate (a warning).

Performance (CPU seconds on this 2-core box, bench/bench_data_contracts.py): GX import +
context + the six suites cost ~4.5 s once per process (``engine()`` is cached); a run
then costs ~2 s at the 100-intent sample and ~2.3-2.8 s at the 10k-intent one (141k rows):
GX's per-expectation bookkeeping (~9 ms x 225), not the rows. Every row of every table is
validated, but no table is ever held whole: the table-level rules (column set, column
types) run on a zero-row frame with the table's columns and dtypes (GX decides them from
``df.dtypes`` alone and reports no element count), and each group of row-level rules (a
"part", <= 4 columns) reads only its own columns from DuckDB, converts them to pandas,
is validated and released before the next part is read; the per-tenant derivation reads
``tenant_id`` and the day column last. ``run_data_contracts`` on the 1M-intent warehouse
(13.9M rows; ledger_entries 6.1M x 13, callback_events 2.4M x 22), measured in a fresh
process, engine excluded: peak RSS 8.2 -> 3.96 GiB; CPU 60-76 s before and 63-72 s after
over two runs each on a shared, busy box (wall 85-88 -> 102-103 s), but paired in one
process the three largest tables cost 63 -> 54 CPU s (read, convert, GX; the per-tenant
re-read of two columns adds ~0.3-1 s per table). At 100k intents (1.4M rows): 1.19 ->
0.76 GiB, 9.0 -> 8.6 CPU s. Published results byte-identical. Uniqueness rules are shown
only the rows that repeat a key (``_Repeats``): ledger_entries' three keys over 6.1M rows
took GX 9.3 s and ~3.7 GiB (the peak of the step) on every row, 2.2 s and 2.2 GiB so. GX's per-batch MD5 fingerprint of the whole frame is switched
off (it was half the time at 1M rows), and GX's cached copy of each part is released after
it is validated. The per-tenant table is derived from the row indices GX itself reports
as unexpected (``result_format="COMPLETE"``), not by validating per tenant: same
verdicts, no extra GX runs, ~0.1-1.5 s per table at 1M intents.

GX is imported lazily, so importing this module (the Dagster definitions do) stays cheap.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import polars as pl

from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import frames
from zentra_pipelines.domain.money import currency_exponents
from zentra_pipelines.domain.prefetch import prefetched

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

STRUCTURE = "structure"
VALUE = "value"

RESULTS_TABLE = "data_contract_results"
BY_TENANT_TABLE = "data_contract_results_by_tenant"
#: Per (source, tenant-day, row-local rule): the unexpected count GX reported, keyed by a
#: fingerprint of that tenant-day's rows (see ``run_data_contracts``).
CACHE_TABLE = "data_contract_cache"

#: The contract's identifier pattern (section 1), spelled with ``\Z``: GX applies it with
#: ``str.contains`` (search semantics), where ``$`` would accept a trailing newline.
IDENTIFIER_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z"
HEX64_REGEX = r"^[0-9a-f]{64}\Z"
#: CUR:RAIL:CUR (contract 2.2); the currencies themselves are checked by the intake.
CORRIDOR_REGEX = r"^[A-Z]{3}:[A-Za-z0-9_.-]{1,64}:[A-Z]{3}\Z"
EVENT_TYPES = (
    "payment.authorized", "payment.captured", "payment.settled", "payment.failed",
    "payment.refunded", "payout.paid", "payout.failed",
)
API_VERSIONS = ("2026-01-01", "2026-06-01")
INTENT_KINDS = ("payment", "transfer", "payout", "card")

#: GX's COMPLETE result (every unexpected row's index: the per-tenant counts come from
#: them) without ``unexpected_index_query``, a pandas filter expression listing those
#: indices again that nothing here reads: GX builds it by filtering the whole part's
#: frame once per expectation (3.3 of 17.8 s of GX at 1M intents).
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String,
    "expectation": pl.String,
    "column": pl.String,
    "rule": pl.String,
    "level": pl.String,
    "success": pl.Boolean,
    "element_count": pl.Int64,
    "unexpected_count": pl.Int64,
    "unexpected_percent": pl.Float64,
    "observed": pl.String,
}
BY_TENANT_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String,
    "day": pl.Date,
    "source": pl.String,
    "expectation": pl.String,
    "column": pl.String,
    "rule": pl.String,
    "level": pl.String,
    "success": pl.Boolean,
    "element_count": pl.Int64,
    "unexpected_count": pl.Int64,
}
_RESULT_ORDER = ["source", "expectation", "column", "rule"]
_BY_TENANT_ORDER = ["tenant_id", "day", "source", "expectation", "column", "rule"]

# ------------------------------------------------------------------ the contracts ---

S, I64, U32, TS = pl.String, pl.Int64, pl.UInt32, pl.Datetime("us")


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite, independent of GX (GX objects are built from it)."""

    rule: str  # stable name, unique within the source: "unique:tenant_id,intent_id"
    level: str  # STRUCTURE | VALUE
    expectation: str  # GX class name, e.g. "ExpectColumnValuesToBeUnique"
    kwargs: tuple[tuple[str, Any], ...] = ()
    #: pandas row condition: the expectation applies to matching rows only (see ``_net_rule``)
    row_condition: str | None = None

    @property
    def column(self) -> str | None:
        kw = dict(self.kwargs)
        if "column" in kw:
            return kw["column"]
        if "column_list" in kw:
            return ",".join(kw["column_list"])
        return None


@dataclass(frozen=True)
class Contract:
    source: str  # the published warehouse table
    columns: Mapping[str, pl.DataType]  # every column and its Polars dtype
    key: tuple[str, ...]  # unique, non-null
    required: tuple[str, ...] = ()  # other non-null columns
    identifiers: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    value_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    regexes: Mapping[str, str] = field(default_factory=dict)
    unique_also: tuple[tuple[str, ...], ...] = ()  # further unique column sets (structure)
    must_be_null: tuple[str, ...] = ()
    extra: tuple[Rule, ...] = ()
    day_column: str | None = None  # the timestamp deciding a row's UTC day (packet plan)

    def rules(self) -> list[Rule]:
        out = [Rule("columns", STRUCTURE, "ExpectTableColumnsToMatchSet",
                    (("column_set", tuple(self.columns)), ("exact_match", True)))]
        out += [Rule(f"type:{c}", STRUCTURE, "ExpectColumnTypeToBe", (("column", c), ("type_", pandas_dtype_name(t))))
                for c, t in self.columns.items()]
        for c in dict.fromkeys(("tenant_id", *self.key) if "tenant_id" in self.columns else self.key):
            out.append(Rule(f"not_null:{c}", STRUCTURE, "ExpectColumnValuesToNotBeNull", (("column", c),)))
        for cols in (self.key, *self.unique_also):
            if len(cols) == 1:
                out.append(Rule(f"unique:{cols[0]}", STRUCTURE, "ExpectColumnValuesToBeUnique", (("column", cols[0]),)))
            else:
                out.append(Rule(f"unique:{','.join(cols)}", STRUCTURE, "ExpectCompoundColumnsToBeUnique",
                                (("column_list", tuple(cols)),)))
        out += [Rule(f"not_null:{c}", VALUE, "ExpectColumnValuesToNotBeNull", (("column", c),))
                for c in self.required if c not in self.key and c != "tenant_id"]
        out += [Rule(f"identifier:{c}", VALUE, "ExpectColumnValuesToMatchRegex", (("column", c), ("regex", IDENTIFIER_REGEX)))
                for c in self.identifiers]
        out += [Rule(f"currency:{c}", VALUE, "ExpectColumnValuesToBeInSet", (("column", c), ("value_set", iso_currencies())))
                for c in self.currencies]
        out += [Rule(f"in_set:{c}", VALUE, "ExpectColumnValuesToBeInSet", (("column", c), ("value_set", tuple(v))))
                for c, v in self.value_sets.items()]
        out += [Rule(f"range:{c}", VALUE, "ExpectColumnValuesToBeBetween",
                     (("column", c), ("min_value", lo), ("max_value", hi)))
                for c, (lo, hi) in self.ranges.items()]
        out += [Rule(f"format:{c}", VALUE, "ExpectColumnValuesToMatchRegex", (("column", c), ("regex", rx)))
                for c, rx in self.regexes.items()]
        out += [Rule(f"null:{c}", VALUE, "ExpectColumnValuesToBeNull", (("column", c),)) for c in self.must_be_null]
        out += list(self.extra)
        names = [r.rule for r in out]
        if len(names) != len(set(names)):  # pragma: no cover - a programming error
            raise ValueError(f"{self.source}: duplicate rule names")
        return out


def _net_rule() -> Rule:
    """net_minor = gross_minor - fee_minor, as a GX row condition: select the rows where it
    does not hold and expect ``net_minor`` to be null there, so each such row counts as
    unexpected. GX reports ``element_count`` over the selected rows only; the results
    table restates it over the whole table. Rows with a null amount are left to the
    not-null rules (the condition is NA for them, and NA rows are not selected)."""
    return Rule("net_equals_gross_minus_fee", VALUE, "ExpectColumnValuesToBeNull", (("column", "net_minor"),),
                row_condition="net_minor != gross_minor - fee_minor")


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        source="callback_events",  # accepted callback lines, one row per line (2.1)
        columns={
            "source_file": S, "file_sha256": S, "line_no": I64, "tenant_id": S, "provider": S, "received_at": TS,
            "webhook_id": S, "webhook_timestamp": I64, "api_version": S, "event_id": S, "type": S, "intent_id": S,
            "provider_ref": S, "amount_minor": I64, "currency": S, "sequence": I64, "occurred_at": TS,
            "error_code": S, "detail": S, "content_hash": S, "copies": U32, "first_received_at": TS,
        },
        key=("file_sha256", "line_no"),
        required=("source_file", "provider", "received_at", "webhook_id", "webhook_timestamp", "api_version",
                  "event_id", "type", "intent_id", "provider_ref", "amount_minor", "currency", "sequence",
                  "occurred_at", "content_hash", "copies", "first_received_at"),
        identifiers=("tenant_id", "provider", "webhook_id", "event_id", "intent_id", "provider_ref"),
        currencies=("currency",),
        value_sets={"type": EVENT_TYPES, "api_version": API_VERSIONS},
        ranges={"sequence": (0, None), "line_no": (1, None), "copies": (1, None), "webhook_timestamp": (0, None)},
        regexes={"file_sha256": HEX64_REGEX},
        must_be_null=("error_code",),
        day_column="received_at",
    ),
    Contract(
        source="provider_state",  # one converged state per provider reference (2.1)
        columns={
            "tenant_id": S, "provider": S, "provider_ref": S, "intent_id": S, "type": S, "amount_minor": I64,
            "currency": S, "sequence": I64, "event_id": S, "occurred_at": TS, "received_at": TS, "events_seen": U32,
        },
        key=("tenant_id", "provider", "provider_ref"),
        required=("intent_id", "type", "amount_minor", "currency", "sequence", "event_id", "occurred_at",
                  "received_at", "events_seen"),
        identifiers=("tenant_id", "provider", "provider_ref", "intent_id", "event_id"),
        currencies=("currency",),
        value_sets={"type": EVENT_TYPES},
        ranges={"sequence": (0, None), "events_seen": (1, None)},
        day_column="received_at",
    ),
    Contract(
        source="intents",  # 2.2
        columns={
            "tenant_id": S, "intent_id": S, "scope": S, "kind": S, "amount_minor": I64, "currency": S,
            "ledger_currency": S, "corridor": S, "actor_id": S, "created_at": TS, "primitives": S, "copies": U32,
            "content_hash": S,
        },
        key=("tenant_id", "intent_id"),
        required=("scope", "kind", "amount_minor", "currency", "ledger_currency", "corridor", "actor_id",
                  "created_at", "copies"),
        identifiers=("tenant_id", "intent_id", "actor_id"),
        currencies=("currency", "ledger_currency"),
        value_sets={"kind": INTENT_KINDS},
        ranges={"copies": (1, None)},
        regexes={"corridor": CORRIDOR_REGEX},
        day_column="created_at",
    ),
    Contract(
        source="settlements",  # 2.4
        columns={
            "tenant_id": S, "provider": S, "provider_ref": S, "currency": S, "gross_minor": I64, "fee_minor": I64,
            "net_minor": I64, "settled_at": TS, "batch_id": S, "source_file": S, "copies": U32,
        },
        key=("tenant_id", "provider", "provider_ref"),
        required=("currency", "gross_minor", "fee_minor", "net_minor", "settled_at", "batch_id", "source_file",
                  "copies"),
        identifiers=("tenant_id", "provider", "provider_ref", "batch_id"),
        currencies=("currency",),
        ranges={"copies": (1, None)},
        extra=(_net_rule(),),
        day_column="settled_at",
    ),
    Contract(
        source="deliveries",  # 2.5
        columns={
            "tenant_id": S, "delivery_id": S, "event_id": S, "endpoint": S, "attempt": I64, "attempted_at": TS,
            "status_code": I64, "error": S, "latency_ms": I64, "copies": U32, "content_hash": S,
        },
        key=("tenant_id", "delivery_id"),
        required=("event_id", "endpoint", "attempt", "attempted_at", "copies"),
        identifiers=("tenant_id", "delivery_id", "event_id"),
        # status_code is null when the connection failed: GX range checks skip nulls
        ranges={"status_code": (100, 599), "attempt": (1, None), "latency_ms": (0, None), "copies": (1, None)},
        regexes={"endpoint": r"^https?://\S+\Z"},  # RE2-friendly: no {n,2040} (RE2 caps repeats at 1000)
        day_column="attempted_at",
    ),
    Contract(
        source="ledger_entries",  # 2.3, after collapse and hash chaining
        columns={
            "posting_id": S, "journal_id": S, "intent_id": S, "tenant_id": S, "account_id": S, "currency": S,
            "amount_minor": I64, "posted_at": TS, "actor_id": S, "idempotency_key": S, "entry_seq": I64,
            "prev_hash": S, "entry_hash": S,
        },
        key=("posting_id",),
        unique_also=(("tenant_id", "entry_seq"), ("entry_hash",)),
        required=("journal_id", "account_id", "currency", "amount_minor", "posted_at", "entry_seq", "prev_hash",
                  "entry_hash"),
        identifiers=("posting_id", "journal_id", "intent_id", "tenant_id", "account_id", "actor_id",
                     "idempotency_key"),
        currencies=("currency",),
        ranges={"entry_seq": (1, None)},
        regexes={"prev_hash": HEX64_REGEX, "entry_hash": HEX64_REGEX},
        day_column="posted_at",
    ),
)
SOURCES: tuple[str, ...] = tuple(c.source for c in CONTRACTS)
_CONTRACTS: dict[str, Contract] = {c.source: c for c in CONTRACTS}


@cache
def iso_currencies() -> tuple[str, ...]:
    return tuple(sorted(currency_exponents()))


# ------------------------------------------------------------ Polars -> pandas ---

_PANDAS_NAMES: dict[type[pl.DataType], str] = {
    pl.Int8: "Int8", pl.Int16: "Int16", pl.Int32: "Int32", pl.Int64: "Int64",
    pl.UInt8: "UInt8", pl.UInt16: "UInt16", pl.UInt32: "UInt32", pl.UInt64: "UInt64",
    pl.Boolean: "boolean", pl.String: "string", pl.Float32: "float32", pl.Float64: "float64",
}


def pandas_dtype_name(dtype: pl.DataType | type[pl.DataType]) -> str:
    """The pandas dtype a Polars column becomes in ``to_pandas_frame`` (what GX compares)."""
    if isinstance(dtype, pl.Datetime):
        unit = dtype.time_unit or "us"
        return f"datetime64[{unit}, {dtype.time_zone}]" if dtype.time_zone else f"datetime64[{unit}]"
    name = _PANDAS_NAMES.get(dtype.base_type())
    if name is None:
        raise ValueError(f"no contract type for Polars dtype {dtype}")
    return name


def to_pandas_frame(frame: pl.DataFrame) -> pd.DataFrame:
    """Convert once per table, keeping the contract's types visible to GX.

    Integers become pandas' nullable ``Int64``/``UInt32``... (a plain ``to_pandas()``
    turns an integer column with a null into float64, which would hide or fake a type
    failure); strings become ``string[pyarrow]``; floats stay float64, so a float amount
    fails ``type:amount_minor`` exactly as it should. Index: a RangeIndex, so GX's
    unexpected row indices are row positions in ``frame``.
    """
    return _arrow_to_pandas(frame.to_arrow())


def _arrow_to_pandas(table: Any) -> pd.DataFrame:
    """``to_pandas_frame`` of a pyarrow Table (the same dtype for the same Arrow type)."""
    import pandas as pd
    import pyarrow as pa

    mapping = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(), pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
        pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow"),
        pa.string_view(): pd.StringDtype("pyarrow"),
    }
    out = table.to_pandas(types_mapper=mapping.get)
    out.index = pd.RangeIndex(len(out))
    return out


# ----------------------------------------------------------------- the GX engine ---

#: Expectation types whose GX ``observed_value`` is a schema fact, never row data.
_SCHEMA_OBSERVED = {"expect_column_type_to_be"}


#: GX 1.9+ deprecates string row conditions in favour of ``Column(...) > literal`` objects,
#: which cannot compare a column with an expression of other columns (net = gross - fee).
_ROW_CONDITION_DEPRECATION = r"The condition_parser parameter is deprecated"


class _Engine:
    """An ephemeral GX context with one pandas dataframe asset and one suite per source."""

    def __init__(self, contracts: Sequence[Contract]):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ROW_CONDITION_DEPRECATION, category=DeprecationWarning)
            self._build(contracts)
        self.lock = threading.Lock()

    def _build(self, contracts: Sequence[Contract]) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every pandas batch under 1 GB (an MD5 over hash_pandas_object of
        # all columns) for a batch marker nothing here reads. Measured: about half of the GX
        # time on a 1M-row table (~0.9 s CPU per million string cells). Turn it off; the
        # verdicts do not depend on it. (Module constant of GX 1.x; absent = no effect.)
        if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
            pandas_execution_engine.HASH_THRESHOLD = 0

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.datasource = datasource = self.context.data_sources.add_pandas("zentra_warehouse")
        #: per source: [(columns or None for the whole table, exact-int64 ok, batch definition, suite,
        #: row-local part, its uniqueness rules when it holds only those)]
        self.parts: dict[str, list[tuple[tuple[str, ...] | None, bool, Any, Any, bool, tuple[Rule, ...]]]] = {}
        self.rules: dict[str, dict[str, Rule]] = {}
        #: per source: rule -> GX expectation type ("expect_column_values_to_match_regex")
        self.types: dict[str, dict[str, str]] = {}
        for contract in contracts:
            rules = contract.rules()
            parts = []
            for index, (columns, members) in enumerate(_partition(rules)):
                name = contract.source if columns is None else f"{contract.source}__part{index}"
                asset = datasource.add_dataframe_asset(name)
                suite = gx.ExpectationSuite(name=f"zentra.{name}")
                for rule in members:
                    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in rule.kwargs}
                    if rule.row_condition:
                        kwargs |= {"row_condition": rule.row_condition, "condition_parser": "pandas"}
                    expectation = getattr(gxe, rule.expectation)(**kwargs, meta={"rule": rule.rule})
                    self.types.setdefault(contract.source, {})[rule.rule] = expectation.expectation_type
                    suite.add_expectation(expectation)
                # a row condition does arithmetic on the columns: leave their dtype alone there
                as_int64 = not any(rule.row_condition for rule in members)
                local = columns is not None and all(_row_local(rule) for rule in members)
                unique = tuple(members) if columns is not None and all(
                    r.expectation in _UNIQUE and r.row_condition is None for r in members) else ()
                parts.append((columns, as_int64, asset.add_batch_definition_whole_dataframe("whole_table"),
                              self.context.suites.add(suite), local, unique))
            self.parts[contract.source] = parts
            self.rules[contract.source] = {r.rule: r for r in rules}

    def validate(
        self, source: str, table: _Table, rows: _Table | None = None, skip_rows: bool = False
    ) -> tuple[list[Any], float]:
        """The result of every expectation of the source's contract, and the seconds spent
        reading and converting the frames GX saw.

        ``rows``: the table the row-local parts (``_row_local``) are validated on instead
        of ``table`` (the changed tenant-days); ``skip_rows``: none of them is run.

        Table-level expectations (the column set, the column types) see a zero-row frame
        with every column and dtype of the table: GX decides them from ``df.columns`` and
        ``df.dtypes`` alone and reports no element count, so the verdicts are those of the
        whole table. Row-level expectations run on narrow frames holding only the columns
        they read, a few columns per frame, read from the table one part at a time and
        released before the next: GX's pandas engine copies the *whole* frame
        (``df[df[column].notnull()]``) several times per row-level expectation, so on a
        22-column table each one cost ~10x what it costs on its own columns. In those
        frames an integer column without nulls is plain NumPy int64, which GX compares
        vectorised (on nullable Int64 it calls Python per value). Same rows, same order
        (row positions, see ``_Table.select``), exact integers: the same verdicts and counts.
        """
        with self.lock, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ROW_CONDITION_DEPRECATION, category=DeprecationWarning)
            manager = self.datasource.get_execution_engine().batch_manager
            results: list[Any] = []
            prepare_s = 0.0
            try:
                plan = [(c, a, b, s, u, table) for c, a, b, s, local, u in self.parts[source] if not local]
                if not skip_rows:
                    plan += [(c, a, b, s, u, table if rows is None else rows)
                             for c, a, b, s, local, u in self.parts[source] if local]
                # The next part is read and converted (DuckDB, Arrow, pandas: native work)
                # on a helper thread while GX, single-threaded Python, validates this one
                # (a hand-off: at most two parts' frames are alive at once). This thread
                # does not use the connection until the stream is closed (its thread
                # joined), so the helper is its only user.
                prepared = (_prepare_part(source_table, unique, columns, as_int64)
                            for columns, as_int64, _, _, unique, source_table in plan)
                with closing(prefetched(prepared, 0, name="zentra-gx-read")) as stream:
                    for (_, _, batch_definition, suite, _, _), (repeats, data, took) in zip(plan, stream):
                        prepare_s += took
                        batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
                        # a copy each time: GX fills its defaults into the dict it is given
                        part_results = list(batch.validate(suite, result_format=dict(RESULT_FORMAT)).results)
                        if repeats is not None:
                            part_results = [repeats.restate(res) for res in part_results]
                        results += part_results
                        # the datasource's engine keeps the last frame of every asset: release
                        # this part's before the next part is read
                        del batch, data
                        manager.batch_data_cache.clear()
                        manager.reset_batch_cache()
                return results, prepare_s
            finally:
                manager.batch_data_cache.clear()
                manager.reset_batch_cache()


def _prepare_part(
    source_table: _Table, unique: tuple[Rule, ...], columns: tuple[str, ...] | None, as_int64: bool
) -> tuple[_Repeats | None, Any, float]:
    """The pandas frame GX validates one part on (and, for a part of uniqueness rules
    over the repeating rows only, how to restate its verdicts), and the seconds taken."""
    t0 = time.perf_counter()
    repeats = _Repeats(source_table, unique) if unique and source_table.repeats_only else None
    data = (to_pandas_frame(source_table.empty()) if columns is None
            else repeats.table.pandas(columns, as_int64) if repeats is not None
            else source_table.pandas(columns, as_int64))
    return repeats, data, time.perf_counter() - t0


#: Row-level expectations share a narrow frame of at most this many columns.
_PART_COLUMNS = 4
_TABLE_LEVEL = {"ExpectTableColumnsToMatchSet", "ExpectColumnTypeToBe"}
_CONDITION_COLUMN_RE = r"[A-Za-z_][A-Za-z0-9_]*"


def _needs(rule: Rule) -> tuple[str, ...]:
    """The columns a row-level rule reads (its column(s), and those of its row condition)."""
    import re

    columns = _rule_columns(rule)
    if rule.row_condition:
        columns += re.findall(_CONDITION_COLUMN_RE, rule.row_condition)
    return tuple(dict.fromkeys(columns))


def _partition(rules: Sequence[Rule]) -> list[tuple[tuple[str, ...] | None, list[Rule]]]:
    """(None, table-level rules) then (columns, rules) parts of at most _PART_COLUMNS columns
    (more only when one rule reads more), in rule order: deterministic. Uniqueness rules
    get parts of their own: they need every row of the table, while the row-local rules
    can be validated on the changed tenant-days alone (``_row_local``)."""
    table = [r for r in rules if r.expectation in _TABLE_LEVEL]
    out: list[tuple[tuple[str, ...] | None, list[Rule]]] = [(None, table)] if table else []
    for wanted in (False, True):
        parts: list[tuple[list[str], list[Rule]]] = []
        for rule in rules:
            if rule.expectation in _TABLE_LEVEL or _row_local(rule) != wanted:
                continue
            needs = _needs(rule)
            home = next((p for p in parts if set(needs) <= set(p[0])), None)
            if home is None:
                home = next((p for p in parts if len(set(p[0]) | set(needs)) <= _PART_COLUMNS), None)
            if home is None:
                home = ([], [])
                parts.append(home)
            home[0].extend(c for c in needs if c not in home[0])
            home[1].append(rule)
        out += [(tuple(columns), members) for columns, members in parts]
    return out


_UNIQUE = {"ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique"}
#: GX reports no ``missing_count`` for these (they count the nulls themselves).
_NO_NONNULL = {"ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeNull"}


def _row_local(rule: Rule) -> bool:
    """A rule whose verdict on a row depends on that row alone (not the column set or
    types, not uniqueness): its unexpected count over a table is the sum of its counts
    over any split of the rows, so a tenant-day's count can be kept while its rows are."""
    return rule.expectation not in _TABLE_LEVEL and rule.expectation not in _UNIQUE


class _Repeats:
    """The rows a part of uniqueness rules can flag, and GX's verdicts on them restated
    over the whole table.

    A uniqueness rule flags exactly the rows whose key (a column's non-null value, or a
    compound key not wholly null) occurs more than once in the table, and every other
    row holding that key is flagged with it. So GX, given only the rows repeating some
    rule's key (all of their occurrences), flags the same rows the whole table would
    show it, and nothing else; the element and non-null counts are the table's, known
    without GX. Polars finds the repeats from the key columns alone (``frames.repeated``): GX's pandas
    engine factorized 6.1M ids and 64-char hashes for ledger_entries' three keys at 1M
    intents (~3 GiB, the peak of the step), and on an incremental run re-checked every
    archived row for the sake of a few new ones.
    """

    def __init__(self, table: _Table, rules: tuple[Rule, ...]):
        keys = table.select(list(dict.fromkeys(c for r in rules for c in _rule_columns(r))))
        self.height = table.height
        self.nonnull: dict[str, int] = {}
        repeated = pl.repeat(False, keys.height, eager=True)
        for rule in rules:
            columns = [c for c in _rule_columns(rule) if c in keys.columns]
            if len(columns) != len(_rule_columns(rule)):  # a missing column: GX raises on the table
                continue
            if rule.expectation == "ExpectColumnValuesToBeUnique":
                key, present = pl.col(columns[0]), pl.col(columns[0]).is_not_null()
            else:  # GX's default for compound keys: ignore a row only when all its values are missing
                key, present = pl.struct(columns), ~pl.all_horizontal(pl.col(columns).is_null())
            counted = keys.select(present).to_series()
            self.nonnull[rule.rule] = int(counted.sum())
            repeated = repeated | (frames.repeated(keys, key) & counted)
        self.positions = repeated.arg_true().cast(pl.Int64)
        self.table = _FrameTable(keys.filter(repeated))

    def restate(self, res: Any) -> Any:
        """``res`` (GX's result on the repeating rows) as GX states it on the whole table."""
        rule = res.expectation_config.meta["rule"]
        result = res.result
        if not result or rule not in self.nonnull or (res.exception_info or {}).get("raised_exception"):
            return res
        count = result.get("unexpected_count")
        index = result.get("unexpected_index_list")
        if count is None or index is None:
            return res
        element, nonnull = self.height, self.nonnull[rule]
        total = count / element * 100 if element else None
        result["element_count"] = element
        result["unexpected_index_list"] = self.positions.gather(pl.Series(index, dtype=pl.Int64)).to_list()
        if "missing_count" in result:
            result["missing_count"] = element - nonnull
            result["missing_percent"] = (element - nonnull) / element * 100 if element else None
            result["unexpected_percent_total"] = total
            result["unexpected_percent"] = result["unexpected_percent_nonmissing"] = (
                count / nonnull * 100 if element and nonnull else None)
        else:
            result["unexpected_percent"] = total
        return res


_EXACT_INT64 = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32"}


def _narrow(frame: pd.DataFrame, columns: Sequence[str], as_int64: bool = True) -> pd.DataFrame:
    """Only ``columns`` (a missing one stays missing, so its expectation raises as on the
    whole table); with ``as_int64``, a nullable integer column without nulls as NumPy
    int64 (exact)."""
    import pandas as pd

    out = {}
    for column in columns:
        if column not in frame.columns:
            continue
        series = frame[column]
        if as_int64 and str(series.dtype) in _EXACT_INT64 and not series.isna().any():
            series = pd.Series(series.to_numpy(dtype="int64"), index=frame.index, name=column)
        out[column] = series
    return pd.DataFrame(out, index=frame.index)


class _Table:
    """One source table as the validation reads it: its columns and dtypes, its row count,
    and subsets of its columns, every subset in the same row order (row positions are what
    GX reports as unexpected, and ``_by_tenant`` maps them to tenant-days)."""

    schema: pl.Schema
    height: int
    #: Whether GX may be shown only the rows repeating a uniqueness key (``_Repeats``); a
    #: reference reading that shows GX every row sets it off.
    repeats_only: bool = True

    def empty(self) -> pl.DataFrame:
        """Zero rows, every column, the table's dtypes (for the table-level rules)."""
        raise NotImplementedError

    def select(self, columns: Sequence[str]) -> pl.DataFrame:
        """Those of ``columns`` the table has (a missing one stays missing), all rows."""
        raise NotImplementedError

    def pandas(self, columns: Sequence[str], as_int64: bool) -> pd.DataFrame:
        """A narrow GX frame: ``_narrow(to_pandas_frame(<table>), columns, as_int64)``
        without converting (or reading) the other columns."""
        import pandas as pd

        part = self.arrow(columns)
        if not part.num_columns:  # every column missing: the rows stay, as in _narrow
            return pd.DataFrame(index=pd.RangeIndex(self.height))
        frame = _arrow_to_pandas(part)
        del part
        return _narrow(frame, columns, as_int64)

    def arrow(self, columns: Sequence[str]) -> Any:
        """``select`` as a pyarrow Table (what ``pandas`` converts)."""
        return self.select(columns).to_arrow()


class _FrameTable(_Table):
    """An in-memory Polars frame (``validate_frames``)."""

    def __init__(self, frame: pl.DataFrame):
        self.frame = frame
        self.schema = frame.schema
        self.height = frame.height

    def empty(self) -> pl.DataFrame:
        return self.frame.clear()

    def select(self, columns: Sequence[str]) -> pl.DataFrame:
        return self.frame.select(c for c in columns if c in self.schema)


#: Alias of DuckDB's row id in the column reads (no contract column has this name).
_ROW_ID = "__zentra_rowid"


class _WarehouseTable(_Table):
    """A published warehouse table, read a few columns at a time (never whole).

    Every read is in row-id order, so row positions agree between reads: a plain scan
    (DuckDB keeps insertion order by default, ``preserve_insertion_order``) is checked to
    have returned every row with strictly increasing row ids; if it did not, the read is
    repeated with ``ORDER BY rowid``, which sorts (measured at 6M rows: +1 s, +1 GB).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str, keys: Sequence[str] | None = None):
        """``keys``: only the rows of these tenant-days (``_day_key``), in the same row-id
        order (the changed tenant-days an incremental run validates)."""
        if source not in SOURCES:  # the contracts' tables only; Warehouse.exists checks its allowlist
            raise KeyError(source)
        self.con, self.source = con, source
        self.where, self.params = "", {}
        if keys is not None:
            self.where = f" WHERE list_contains($keys, {_day_key(_CONTRACTS[source])})"
            self.params = {"keys": sorted(keys)}
        self._empty = con.sql(f'SELECT * FROM "{source}" LIMIT 0').pl()
        self.schema = self._empty.schema
        self.height = int(con.sql(f'SELECT count(*) FROM "{source}"{self.where}', **self._params()).fetchall()[0][0])

    def _params(self) -> dict[str, Any]:
        return {"params": self.params} if self.params else {}

    def day_keys(self) -> pl.Series:
        """Each row's tenant-day key (``_day_key``), in row-id order (the order GX saw)."""
        query = f'SELECT {_day_key(_CONTRACTS[self.source])} AS k FROM "{self.source}"{self.where} ORDER BY rowid'
        return self.con.sql(query, **self._params()).pl()["k"]

    def empty(self) -> pl.DataFrame:
        return self._empty

    def select(self, columns: Sequence[str]) -> pl.DataFrame:
        return pl.from_arrow(self.arrow(columns))

    def arrow(self, columns: Sequence[str]) -> Any:
        """Read from DuckDB straight into Arrow, in row-id order: ``pandas`` converts it
        from there (through Polars, every string column was copied twice more, into
        Polars' string views and back out to Arrow, before pandas copied it again)."""
        # names from the contract (an allowlist), and only those the table has
        names = [c for c in dict.fromkeys(columns) if c in self.schema]
        if any('"' in c for c in names):  # pragma: no cover - contract column names are plain
            raise ValueError(f"{self.source}: unexpected column name in {names}")
        query = (f'SELECT rowid AS "{_ROW_ID}"' + "".join(f', "{c}"' for c in names)
                 + f' FROM "{self.source}"{self.where}')
        table = self.con.sql(query, **self._params()).to_arrow_table()
        if not _in_row_id_order(pl.from_arrow(table.column(_ROW_ID)), self.height):
            table = self.con.sql(f"{query} ORDER BY rowid", **self._params()).to_arrow_table()
        return table.drop_columns([_ROW_ID])


class _ArrowTable(_Table):
    """Some rows of a warehouse table held in memory (few: the changed tenant-days), read
    once in row-id order with their tenant-day keys, so that every part is cut from one
    filtered scan instead of one scan each."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str, keys: Sequence[str], columns: Sequence[str]):
        contract = _CONTRACTS[source]
        names = [c for c in dict.fromkeys(columns) if c in contract.columns]
        query = (f'SELECT {_day_key(contract)} AS "{_ROW_ID}"' + "".join(f', "{c}"' for c in names)
                 + f' FROM "{source}" WHERE list_contains($keys, {_day_key(contract)}) ORDER BY rowid')
        table = con.sql(query, params={"keys": sorted(keys)}).to_arrow_table()
        self.keys = pl.from_arrow(table.column(_ROW_ID)).cast(pl.String)
        self.table = table.drop_columns([_ROW_ID])
        self._empty = pl.from_arrow(self.table.slice(0, 0))
        self.schema = self._empty.schema
        self.height = self.table.num_rows

    def empty(self) -> pl.DataFrame:
        return self._empty

    def select(self, columns: Sequence[str]) -> pl.DataFrame:
        return pl.from_arrow(self.arrow(columns))

    def arrow(self, columns: Sequence[str]) -> Any:
        return self.table.select([c for c in dict.fromkeys(columns) if c in self.schema])

    def day_keys(self) -> pl.Series:
        return self.keys


def _in_row_id_order(row_id: pl.Series, height: int) -> bool:
    """Every row once, in ascending row-id order (row ids are unique within a table)."""
    return row_id.len() == height and (height < 2 or bool((row_id.diff().slice(1) > 0).all()))


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> _Engine:
    """Built once per process: GX import + context + suites cost seconds, not per run.

    Thread-safe: a caller arriving while ``prewarm`` is still building waits for that
    build instead of starting a second one.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine(CONTRACTS)
        return _ENGINE


def prewarm(on_ready: Callable[[], object] | None = None) -> threading.Thread:
    """Build the engine on a background thread (``zentra run`` starts this first thing).

    The build is import- and object-heavy Python; the stages that run meanwhile spend
    their time in DuckDB, Polars, zlib and hashlib, which release the GIL, so on a
    second core the seconds of GX setup mostly disappear from the run's wall time. A
    failure here is not reported: the data_contracts asset builds (and fails) itself.
    ``on_ready`` is called on that thread once the build has ended either way.
    """

    def build() -> None:
        try:
            engine()
        except Exception:  # noqa: BLE001 - the asset rebuilds and reports it
            pass
        if on_ready is not None:
            on_ready()

    thread = threading.Thread(target=build, name="zentra-gx-prewarm", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------- validation ---


@dataclass(frozen=True)
class SourceOutcome:
    source: str
    rows: int
    convert_s: float  # reading the parts' columns + Polars -> pandas
    validate_s: float  # the GX suite validation
    by_tenant_s: float  # per tenant-day counts from GX's unexpected row indices
    results: pl.DataFrame  # RESULT_SCHEMA
    by_tenant: pl.DataFrame  # BY_TENANT_SCHEMA
    missing: bool = False  # the table was not published


@dataclass(frozen=True)
class ContractReport:
    results: pl.DataFrame  # RESULT_SCHEMA, sorted by source, expectation, column, rule
    by_tenant: pl.DataFrame  # BY_TENANT_SCHEMA, sorted by tenant_id, day, source, expectation, column, rule
    rows: dict[str, int]  # source -> rows validated
    timings: dict[str, float]  # source -> seconds (read + convert + GX validate + per-tenant derivation)
    timing_detail: dict[str, dict[str, float]]  # source -> convert_s, gx_s, by_tenant_s
    engine_s: float  # GX import + context + suites; paid once per process (0 afterwards)
    total_s: float  # this call, engine included
    missing: tuple[str, ...] = ()  # sources whose table was not published (one failure each)

    @property
    def suites(self) -> int:
        """Suites GX actually ran (a missing table is reported, not validated)."""
        return len(self.rows) - len(self.missing)

    @property
    def expectations(self) -> int:
        return self.results.height

    @property
    def failed(self) -> pl.DataFrame:
        return self.results.filter(~pl.col("success"))

    def failed_count(self, level: str | None = None) -> int:
        failed = self.failed
        return failed.height if level is None else failed.filter(pl.col("level") == level).height

    @property
    def passed(self) -> bool:
        return self.failed.height == 0


def _observed(expectation: str, result: Mapping[str, Any]) -> str | None:
    if expectation == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {','.join(sorted(map(str, v)))}" for k, v in sorted(mismatched.items()) if v]
        return "; ".join(parts) if parts else f"{len(result.get('observed_value') or [])} columns"
    if expectation in _SCHEMA_OBSERVED:
        value = result.get("observed_value")
        return None if value is None else str(value)
    return None


def _rule_columns(rule: Rule) -> list[str]:
    kw = dict(rule.kwargs)
    return [kw["column"]] if "column" in kw else list(kw.get("column_list", ()))


def _validate_source(eng: _Engine, contract: Contract, table: _Table | None) -> SourceOutcome:
    rules = eng.rules[contract.source]
    if table is None:  # the upstream asset never published: one structural failure, no GX run
        rows = [(contract.source, "expect_table_to_exist", None, "table_exists", STRUCTURE, False, None, None, None,
                 "table not published")]
        return SourceOutcome(contract.source, 0, 0.0, 0.0, 0.0, pl.DataFrame(rows, schema=RESULT_SCHEMA, orient="row"),
                             pl.DataFrame(schema=BY_TENANT_SCHEMA), missing=True)
    t0 = time.perf_counter()
    validation, prepare_s = eng.validate(contract.source, table)
    t2 = time.perf_counter()
    t1 = t0 + prepare_s  # convert_s: reading and converting the parts; validate_s: GX itself

    out_rows: list[tuple] = []
    unexpected: list[tuple[str, pl.Series]] = []  # (rule, row positions) for row-level rules
    for res in validation:
        rule = rules[res.expectation_config.meta["rule"]]
        row, index = _result_row(contract.source, rule, res, table)
        out_rows.append(row)
        if index is not None:
            unexpected.append((rule.rule, index))
    results = pl.DataFrame(out_rows, schema=RESULT_SCHEMA, orient="row")
    t3 = time.perf_counter()
    by_tenant = _by_tenant(contract, table, results, unexpected)
    t4 = time.perf_counter()
    return SourceOutcome(contract.source, table.height, t1 - t0, t2 - t1, t4 - t3, results, by_tenant)


def _result_row(source: str, rule: Rule, res: Any, table: _Table) -> tuple[tuple, pl.Series | None]:
    """One GX expectation result as a RESULT_SCHEMA row, and its unexpected row positions
    (``None`` for a table-level rule or one that raised)."""
    cfg = res.expectation_config
    result = res.result or {}
    raised = bool(res.exception_info and res.exception_info.get("raised_exception"))
    success = bool(res.success) and not raised
    element = result.get("element_count")
    count = result.get("unexpected_count")
    percent = result.get("unexpected_percent")
    if rule.row_condition is not None and not raised:
        # GX counted only the rows its condition selected: restate over the table
        element = table.height
        percent = (100.0 * count / element) if element and count is not None else (0.0 if count == 0 else None)
    observed = _observed(cfg.type, result)
    if raised:
        # GX's exception text may quote data: keep a fixed reason instead
        absent = [c for c in _rule_columns(rule) if c not in table.schema]
        observed = f"error: column missing: {','.join(absent)}" if absent else "error: expectation raised"
        element, count, percent = None, None, None
    row = _row(source, cfg.type, rule, success, element, count, percent, observed)
    index = result.get("unexpected_index_list")
    if raised or index is None or count is None:
        return row, None
    return row, pl.Series(index, dtype=pl.Int64)


def _row(source: str, expectation: str, rule: Rule, success: bool, element: int | None, count: int | None,
         percent: float | None, observed: str | None) -> tuple:
    if percent is not None and (math.isnan(percent) or math.isinf(percent)):
        percent = None
    return (source, expectation, rule.column, rule.rule, rule.level, success,
            None if element is None else int(element), None if count is None else int(count),
            None if percent is None else round(float(percent), 6), observed)


def _by_tenant(
    contract: Contract,
    table: _Table,
    results: pl.DataFrame,
    unexpected: list[tuple[str, pl.Series]],
) -> pl.DataFrame:
    """Per tenant and UTC day, from GX's own unexpected row positions (no second GX run).

    Row-level rules: element_count = the tenant-day's rows, unexpected_count = its rows GX
    flagged. Table-level rules (column set, types) hold or fail for the whole table: the
    tenant-day row repeats that verdict, unexpected_count is null. Only the two key
    columns are read, in the row order of the parts GX validated.
    """
    schema = table.schema
    frame = table.select([c for c in ("tenant_id", contract.day_column) if c is not None])
    keys = frame.select(
        (pl.col("tenant_id").cast(pl.String) if "tenant_id" in schema else pl.lit(None, pl.String)).alias("tenant_id"),
        (pl.col(contract.day_column).cast(pl.Date, strict=False)
         if contract.day_column in schema and schema[contract.day_column].is_temporal()
         else pl.lit(None, pl.Date)).alias("day"),
    )
    if not frame.width:  # neither key column: one (null, null) key per row
        keys = pl.DataFrame({"tenant_id": pl.Series([None] * table.height, dtype=pl.String),
                             "day": pl.Series([None] * table.height, dtype=pl.Date)})
    del frame
    groups = keys.group_by("tenant_id", "day").agg(pl.len().cast(pl.Int64).alias("element_count"))
    if groups.height == 0:
        return pl.DataFrame(schema=BY_TENANT_SCHEMA)
    flagged = [keys[idx].with_columns(rule=pl.lit(rule)) for rule, idx in unexpected if idx.len()]
    counts = (
        pl.concat(flagged).group_by("rule", "tenant_id", "day").agg(pl.len().cast(pl.Int64).alias("n"))
        if flagged else pl.DataFrame(schema={"rule": pl.String, "tenant_id": pl.String, "day": pl.Date, "n": pl.Int64})
    )
    return _by_tenant_frame(results, groups, counts, {rule for rule, _ in unexpected})


def _by_tenant_frame(results: pl.DataFrame, groups: pl.DataFrame, counts: pl.DataFrame, row_level: set[str]) -> pl.DataFrame:
    """Every result row repeated per tenant-day (``groups``: tenant_id, day, element_count):
    a row-level rule with that tenant-day's flagged rows (``counts``: rule, tenant_id, day,
    n), a table-level one with the table's verdict."""
    if groups.height == 0:
        return pl.DataFrame(schema=BY_TENANT_SCHEMA)
    meta = results.select("source", "expectation", "column", "rule", "level", pl.col("success").alias("table_success"))
    return (
        meta.join(groups, how="cross")
        .join(counts, on=["rule", "tenant_id", "day"], how="left", nulls_equal=True)
        .with_columns(
            unexpected_count=pl.when(pl.col("rule").is_in(sorted(row_level)))
            .then(pl.col("n").fill_null(0))
            .otherwise(pl.lit(None, pl.Int64)),
        )
        .with_columns(
            success=pl.when(pl.col("unexpected_count").is_not_null())
            .then(pl.col("unexpected_count") == 0)
            .otherwise(pl.col("table_success")),
        )
        .select(list(BY_TENANT_SCHEMA))
        .cast(BY_TENANT_SCHEMA)
    )


def validate_frames(frames: Mapping[str, pl.DataFrame | None], *, sources: Sequence[str] | None = None) -> ContractReport:
    """Validate in-memory frames (``source -> frame``; a missing/None frame fails as unpublished).

    Pure apart from GX: no database. ``sources`` limits which suites run (default: all).
    """

    def table(source: str) -> _Table | None:
        frame = frames.get(source)
        return None if frame is None else _FrameTable(frame)

    return _validate(table, sources)


def _validate(
    tables: Callable[[str], _Table | None],
    sources: Sequence[str] | None,
    incremental: Callable[[_Engine, Contract], SourceOutcome | None] | None = None,
) -> ContractReport:
    """``incremental``: tried first per source; ``None`` from it = validate the table whole."""
    t0 = time.perf_counter()
    eng = engine()
    engine_s = time.perf_counter() - t0
    wanted = set(SOURCES if sources is None else sources)
    outcomes = [(incremental and incremental(eng, c)) or _validate_source(eng, c, tables(c.source))
                for c in CONTRACTS if c.source in wanted]
    results = pl.concat([o.results for o in outcomes]) if outcomes else pl.DataFrame(schema=RESULT_SCHEMA)
    by_tenant = pl.concat([o.by_tenant for o in outcomes]) if outcomes else pl.DataFrame(schema=BY_TENANT_SCHEMA)
    return ContractReport(
        results=results.sort(_RESULT_ORDER, nulls_last=True),
        by_tenant=by_tenant.sort(_BY_TENANT_ORDER, nulls_last=True),
        rows={o.source: o.rows for o in outcomes},
        timings={o.source: round(o.convert_s + o.validate_s + o.by_tenant_s, 4) for o in outcomes},
        timing_detail={o.source: {"convert_s": round(o.convert_s, 4), "gx_s": round(o.validate_s, 4),
                                  "by_tenant_s": round(o.by_tenant_s, 4)} for o in outcomes},
        engine_s=round(engine_s, 4),
        total_s=round(time.perf_counter() - t0, 4),
        missing=tuple(o.source for o in outcomes if o.missing),
    )


def run_data_contracts(con: duckdb.DuckDBPyConnection) -> ContractReport:
    """Validate every published source table, publish the results.

    A table is never read whole: each GX part reads only its own columns, then the
    per-tenant derivation its two key columns (see ``_WarehouseTable``).

    Incremental (``_validate_changed``): the row-local rules are validated by GX on the
    rows of the tenant-days whose content changed since the last run only; the other
    tenant-days keep the counts GX gave them then (``data_contract_cache``, keyed by a
    fingerprint of each tenant-day's rows). Uniqueness and the table-level rules are
    validated on the whole table every run. The published tables are those of a whole
    run (a test and the replay fixture compare them); a fresh home validates everything.
    """

    def table(source: str) -> _Table | None:
        return _WarehouseTable(con, source) if Warehouse.exists(con, source) else None

    previous = Warehouse.read(con, CACHE_TABLE) if Warehouse.exists(con, CACHE_TABLE) else None
    if previous is None or set(previous.columns) != set(CACHE_SCHEMA):
        previous = pl.DataFrame(schema=CACHE_SCHEMA)
    fresh: list[pl.DataFrame] = []

    def incremental(eng: _Engine, contract: Contract) -> SourceOutcome | None:
        if contract.source not in groups:
            return None
        done = _validate_changed(eng, contract, con, previous.filter(pl.col("source") == contract.source),
                                 groups[contract.source].result())
        if done is None:
            return None
        outcome, cache_rows = done
        fresh.append(cache_rows)
        return outcome

    # Each source's tenant-day fingerprints are grouped by DuckDB on a helper thread while
    # GX (Python) validates the source before it: at 100k intents over 31 days, 0.5 s of
    # grouping 1.4M rows that used to wait its turn.
    with Warehouse.reader(con) as reader:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zentra-contract-fingerprints")
        try:
            groups = {c.source: pool.submit(_tenant_day_groups, reader, c)
                      for c in CONTRACTS if Warehouse.exists(con, c.source)}
            report = _validate(table, None, incremental)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    cache_frame = pl.concat(fresh) if fresh else pl.DataFrame(schema=CACHE_SCHEMA)
    Warehouse.publish(
        con,
        {RESULTS_TABLE: report.results, BY_TENANT_TABLE: report.by_tenant,
         CACHE_TABLE: cache_frame.select(list(CACHE_SCHEMA)).sort("source", "key", "rule")},
        allow_empty={BY_TENANT_TABLE, CACHE_TABLE},
    )
    return report


# ------------------------------------------------------------- incremental runs ---

CACHE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String,
    "key": pl.String,  # the tenant-day, ``_day_key``
    "fingerprint": pl.String,  # rules digest : rows : hash sum of the rows' rule columns
    "rule": pl.String,  # a row-local rule
    "unexpected_count": pl.Int64,  # rows GX flagged for it in that tenant-day
}
#: Changed rows up to this many are read once, every part cut from that read (``_ArrowTable``).
_MERGED_MAX_ROWS = 200_000
#: Bump when what the cache means changes in a way the rules digest does not show.
_CACHE_FORMAT = "zentra.data_contract_cache/1"


def _day_key(contract: Contract) -> str:
    """SQL: a row's tenant-day as one string, ``<day>|V<tenant>`` (``N`` for a null part).
    The day comes first and never holds a ``|``, so any tenant id reads back unambiguously;
    names come from the contract."""
    if contract.day_column is None:  # pragma: no cover - every contract has one
        raise ValueError(f"{contract.source}: no day column")
    day = f'coalesce(CAST(CAST("{contract.day_column}" AS DATE) AS VARCHAR), \'N\')'
    return f"({day} || '|' || coalesce('V' || \"tenant_id\", 'N'))"


@cache
def _rules_digest(source: str) -> str:
    """What a cached count depends on besides the rows: the row-local rules of the source,
    its column types and the code (``code_version``: this module, where rows become GX
    frames, and the versions of GX and the engines); a change re-validates every
    tenant-day once."""
    import hashlib
    import json

    contract = _CONTRACTS[source]
    payload = {
        "format": _CACHE_FORMAT,
        "rules": [[r.rule, r.level, r.expectation, repr(r.kwargs), r.row_condition]
                  for r in contract.rules() if _row_local(r)],
        "columns": {c: str(t) for c, t in contract.columns.items()},
        "code": code_version(),  # this module, the engines' and GX's versions among it
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _tenant_day_groups(con: duckdb.DuckDBPyConnection, contract: Contract) -> pl.DataFrame | None:
    """Per tenant-day of a source (``_validate_changed``): its key, tenant_id, day, rows, the
    hash sum of the row-local rules' columns, the non-null count of each column those rules
    count (``nn<i>``) and the fingerprint; None when the table is validated whole instead
    (not exactly its contract's columns and types, no row). Read-only, on any connection
    to the warehouse: ``run_data_contracts`` computes them on a helper thread, each source's
    ahead of its validation."""
    source = contract.source
    table = _WarehouseTable(con, source)
    if dict(table.schema) != dict(contract.columns) or table.height == 0 or contract.day_column is None:
        return None
    local = [r for r in contract.rules() if _row_local(r)]
    hashed = ", ".join(f'"{c}"' for c in dict.fromkeys(c for r in local for c in _needs(r)))
    groups = con.sql(
        f'SELECT {_day_key(contract)} AS "key", "tenant_id", CAST("{contract.day_column}" AS DATE) AS "day", '
        f'count(*) AS "rows", CAST(sum(hash({hashed})) AS VARCHAR) AS "hash"'
        + "".join(f', count("{c}") AS "nn{i}"' for i, c in enumerate(_nonnull_columns(local)))
        + f' FROM "{source}" GROUP BY ALL'
    ).pl()
    return groups.with_columns(
        fingerprint=pl.format("{}:{}:{}", pl.lit(_rules_digest(source)), pl.col("rows"), pl.col("hash")))


def _nonnull_columns(local: Sequence[Rule]) -> list[str]:
    return list(dict.fromkeys(r.column for r in local if _counts_nonnull(r)))


def _validate_changed(
    eng: _Engine, contract: Contract, con: duckdb.DuckDBPyConnection, cached: pl.DataFrame,
    groups: pl.DataFrame | None,
) -> tuple[SourceOutcome, pl.DataFrame] | None:
    """One source, validated in proportion to what changed; ``None`` = validate it whole.

    Per tenant-day, DuckDB computes a fingerprint of its rows (row count and the sum of a
    64-bit hash of the columns the row-local rules read: order-free) and the non-null
    count of each column those rules read. A tenant-day whose fingerprint is the cached
    one keeps its cached unexpected counts; GX validates the row-local rules on the rows
    of the other tenant-days only, and the uniqueness and table-level rules on the whole
    table (a new row can duplicate an old one anywhere). The whole-table result of a
    row-local rule is then the sum over tenant-days, restated as GX states it (its
    percentage over the non-null rows, ``_local_row``). Only a table with exactly its
    contract's columns and types, and at least one row, is done this way: any other is
    validated whole (where GX's reports of a missing column or a wrong type belong), as
    is a source where GX's counts on the changed rows do not add up as expected.
    """
    if groups is None:
        return None
    source = contract.source
    table = _WarehouseTable(con, source)
    t0 = time.perf_counter()
    rules = eng.rules[source]
    local = [r for r in rules.values() if _row_local(r)]
    nonnull = _nonnull_columns(local)
    complete = (
        cached.group_by("key", "fingerprint").agg(pl.len().alias("m"))
        .filter(pl.col("m") == len(local)).select("key", "fingerprint")
    )
    kept = groups.join(complete, on=["key", "fingerprint"], how="semi")
    changed = groups.join(complete, on=["key", "fingerprint"], how="anti")
    rows: _WarehouseTable | _ArrowTable | None = None
    if changed.height == groups.height:
        rows = table
    elif changed.height and int(changed["rows"].sum()) <= _MERGED_MAX_ROWS:
        rows = _ArrowTable(con, source, changed["key"].to_list(), list(dict.fromkeys(c for r in local for c in _needs(r))))
    elif changed.height:
        rows = _WarehouseTable(con, source, keys=changed["key"].to_list())
    fingerprint_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    validation, prepare_s = eng.validate(source, table, rows, skip_rows=rows is None)
    t2 = time.perf_counter()

    out_rows: list[tuple] = []
    whole_flagged: list[tuple[str, pl.Series]] = []  # uniqueness rules, positions in the table
    fresh: list[pl.DataFrame] = []  # (key, rule) per flagged row of the changed tenant-days
    row_keys = rows.day_keys() if rows is not None else None
    for res in validation:
        rule = rules[res.expectation_config.meta["rule"]]
        if not _row_local(rule):
            row, index = _result_row(source, rule, res, table)
            out_rows.append(row)
            if index is not None:
                whole_flagged.append((rule.rule, index))
            continue
        if rows is None or row_keys is None:  # pragma: no cover - skipped parts give no results
            return None
        result = res.result or {}
        if res.exception_info and res.exception_info.get("raised_exception"):
            return None
        count, index = result.get("unexpected_count"), result.get("unexpected_index_list")
        if count is None or index is None or len(index) != count:
            return None
        if rule.row_condition is None and result.get("element_count") != rows.height:
            return None
        if _counts_nonnull(rule):
            seen = changed[f"nn{nonnull.index(rule.column)}"].sum()
            if result.get("missing_count") != rows.height - seen:
                return None
        if count:
            fresh.append(pl.DataFrame({"key": row_keys.gather(index), "rule": rule.rule}))
    if rows is not None and row_keys is not None and row_keys.len() != rows.height:  # pragma: no cover
        return None

    names = pl.DataFrame({"rule": [r.rule for r in local]})
    flagged = (pl.concat(fresh).group_by("key", "rule").agg(pl.len().cast(pl.Int64).alias("unexpected_count"))
               if fresh else pl.DataFrame(schema={"key": pl.String, "rule": pl.String, "unexpected_count": pl.Int64}))
    counts = pl.concat([
        cached.join(kept.select("key", "fingerprint"), on=["key", "fingerprint"], how="semi")
        .select("key", "rule", "unexpected_count"),
        changed.select("key").join(names, how="cross")
        .join(flagged, on=["key", "rule"], how="left").with_columns(pl.col("unexpected_count").fill_null(0)),
    ])
    totals = dict(counts.group_by("rule").agg(pl.col("unexpected_count").sum()).iter_rows())
    elements = int(groups["rows"].sum())
    for rule in local:
        seen = int(groups[f"nn{nonnull.index(rule.column)}"].sum()) if _counts_nonnull(rule) else None
        out_rows.append(_local_row(source, eng.types[source][rule.rule], rule, elements,
                                   int(totals.get(rule.rule, 0)), seen, table.height))
    results = pl.DataFrame(out_rows, schema=RESULT_SCHEMA, orient="row")
    t3 = time.perf_counter()

    days = groups.select("key", "tenant_id", "day")
    by_key = counts.rename({"unexpected_count": "n"})
    if any(index.len() for _, index in whole_flagged):  # else no table-wide read of the keys
        whole_keys = row_keys if rows is table and row_keys is not None else table.day_keys()
        by_key = pl.concat([by_key, *[
            pl.DataFrame({"key": whole_keys.gather(index), "rule": rule}).group_by("key", "rule")
            .agg(pl.len().cast(pl.Int64).alias("n"))
            for rule, index in whole_flagged if index.len()
        ]], how="vertical_relaxed")
    tenant_counts = by_key.join(days, on="key").select("rule", "tenant_id", "day", "n")
    row_level = {r.rule for r in local} | {rule for rule, _ in whole_flagged}
    by_tenant = _by_tenant_frame(
        results, groups.select("tenant_id", "day", pl.col("rows").cast(pl.Int64).alias("element_count")),
        tenant_counts, row_level,
    )
    cache_rows = counts.join(groups.select("key", "fingerprint"), on="key").select(
        pl.lit(source).alias("source"), "key", "fingerprint", "rule", "unexpected_count")
    t4 = time.perf_counter()
    outcome = SourceOutcome(source, table.height, fingerprint_s + prepare_s, t2 - t1 - prepare_s,
                            t4 - t3, results, by_tenant)
    return outcome, cache_rows


def _counts_nonnull(rule: Rule) -> bool:
    """GX states this rule's percentage over the non-null rows of its column."""
    return rule.expectation not in _NO_NONNULL and rule.row_condition is None


def _local_row(source: str, expectation: str, rule: Rule, elements: int, count: int, nonnull: int | None,
               height: int) -> tuple:
    """A row-local rule's whole-table result from its summed counts, stated as GX states it
    on the whole table (``_format_map_output``; success with the default ``mostly`` of 1):
    the percentage is over the non-null rows, or over every row for the null rules (GX
    passes no non-null count there); none without rows; a rule with a row condition is
    restated over the table as in ``_result_row``."""
    if rule.row_condition is not None:
        percent = (100.0 * count / height) if height else (0.0 if count == 0 else None)
        return _row(source, expectation, rule, count == 0, height, count, percent, None)
    if nonnull is None:
        percent = count / elements * 100 if elements > 0 else None
        success = True if elements == 0 else count == 0
    else:
        percent = (count / nonnull * 100 if nonnull > 0 else None) if elements > 0 else None
        success = True if elements == 0 or nonnull == 0 else count == 0
    return _row(source, expectation, rule, success, elements, count, percent, None)


# ------------------------------------------------------- reading the verdicts back ---


def _published(con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
    return Warehouse.read(con, RESULTS_TABLE)


def failures(con: duckdb.DuckDBPyConnection, level: str) -> list[str]:
    """Failed expectations of one level, as one line each (counts only, no values)."""
    results = _published(con)
    if results is None:
        return [f"{RESULTS_TABLE} was not published"]
    return describe_failures(results.filter((pl.col("level") == level) & ~pl.col("success")))


def describe_failures(failed: pl.DataFrame) -> list[str]:
    out = []
    for r in failed.sort(_RESULT_ORDER, nulls_last=True).iter_rows(named=True):
        if r["unexpected_count"] is not None:
            detail = f"{r['unexpected_count']:,} of {r['element_count']:,} rows"
        else:
            detail = r["observed"] or "failed"
        out.append(f"{r['source']}: {r['rule']} ({r['expectation']}): {detail}")
    return out


def structure_failures(con: duckdb.DuckDBPyConnection) -> list[str]:
    return failures(con, STRUCTURE)


def value_findings(con: duckdb.DuckDBPyConnection) -> list[str]:
    return failures(con, VALUE)


def summary_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """For the run summary: one headline plus one line per failed expectation."""
    results = _published(con)
    if results is None or results.height == 0:
        return ["Data contracts: not run"]
    failed = results.filter(~pl.col("success"))
    by_level = {lvl: failed.filter(pl.col("level") == lvl).height for lvl in (STRUCTURE, VALUE)}
    lines = [
        f"Data contracts (Great Expectations): {results['source'].n_unique()} suites, {results.height:,} expectations, "
        f"{failed.height:,} failed (structure {by_level[STRUCTURE]:,}, value {by_level[VALUE]:,})"
    ]
    lines += [f"  {line}" for line in describe_failures(failed)]
    return lines
