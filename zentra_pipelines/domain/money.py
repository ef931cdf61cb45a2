"""The money model of the contract (section 1): integer minor units, ISO 4217, identifiers.

Why a module of its own: every stage (callbacks, intents, postings, settlements) must
apply the *same* rules, so an amount accepted in one place is never refused in another.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from importlib import resources

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Contract section 1: every identifier matches this, anything else is quarantined.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)


@lru_cache(maxsize=1)
def currency_exponents() -> dict[str, int]:
    """ISO 4217 alpha-3 code -> minor-unit exponent, from the list shipped with the package."""
    text = resources.files("zentra_pipelines.data").joinpath("iso4217.csv").read_text("utf-8")
    return {row["currency"]: int(row["exponent"]) for row in csv.DictReader(text.splitlines())}


def is_currency(code: object) -> bool:
    return isinstance(code, str) and code in currency_exponents()


def is_identifier(value: object) -> bool:
    # fullmatch + no trailing newline: `$` alone would accept "abc\n".
    return isinstance(value, str) and IDENTIFIER_RE.fullmatch(value) is not None


def is_amount(value: object) -> bool:
    """A JSON integer that fits signed 64-bit. bool is an int subclass in Python: refused."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def format_minor(amount_minor: int, currency: str) -> str:
    """Display only: 125000 EUR -> '1250.00 EUR'. Integer arithmetic, never float."""
    exp = currency_exponents().get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    units, minor = divmod(abs(amount_minor), 10**exp) if exp else (abs(amount_minor), 0)
    body = f"{units:,}" + (f".{minor:0{exp}d}" if exp else "")
    return f"{sign}{body} {currency}"
