"""The policies file is refused, with where and why, whenever a control would weaken in
silence: a limit the engine would not read (a float, a string, a boolean, out of range,
a misspelt key or currency) used to mean no limit at all for that currency."""

from __future__ import annotations

import copy

import pytest
import yaml

from zentra_pipelines.adapters.config import ConfigError, load_policies, policies_problem
from zentra_pipelines.settings import SAMPLE

GOOD = {"policy_format": 1, "tenants": {"t_alpha": {
    "max_amount_minor": {"EUR": 5_000_000}, "daily_limit_minor": {"EUR": 57_000_000},
    "allowed_corridors": ["EUR:SEPA:EUR"], "reviewers": ["op_anna"]}}}


def _with(path: tuple, value) -> dict:
    doc = copy.deepcopy(GOOD)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def test_the_bundled_sample_and_a_plain_policy_pass():
    assert policies_problem(GOOD) is None
    assert policies_problem(yaml.safe_load((SAMPLE / "policies.yaml").read_text())) is None
    assert policies_problem(_with(("tenants", "t_alpha", "max_amount_minor", "EUR"), 0)) is None  # all to review


@pytest.mark.parametrize("amount", [5_000_000.5, 5e6, "5000000", True, -5, 2**63, None])
def test_a_limit_that_is_not_an_integer_in_range_is_refused(amount):
    doc = _with(("tenants", "t_alpha", "daily_limit_minor", "EUR"), amount)
    assert policies_problem(doc) == (f"t_alpha.daily_limit_minor.EUR: {amount!r} is not an integer amount in minor "
                                     "units between 0 and 9223372036854775807")


@pytest.mark.parametrize(("path", "value", "problem"), [
    (("policy_format",), 2, "policy_format 2 is not supported (expected 1)"),
    (("tenants", "t alpha"), {}, "tenant 't alpha' is not an identifier"),
    (("tenants", "t_alpha"), None, "t_alpha: expected a mapping of max_amount_minor, daily_limit_minor, "
                                   "allowed_corridors, reviewers"),
    (("tenants", "t_alpha", "max_amount"), {"EUR": 1}, "t_alpha: unknown key(s) max_amount (known: max_amount_minor, "
                                                       "daily_limit_minor, allowed_corridors, reviewers)"),
    (("tenants", "t_alpha", "max_amount_minor"), [5], "t_alpha.max_amount_minor: expected a mapping of currency to "
                                                      "an integer amount in minor units"),
    (("tenants", "t_alpha", "max_amount_minor", "EUT"), 5, "t_alpha.max_amount_minor: 'EUT' is not an ISO 4217 "
                                                           "currency code"),
    (("tenants", "t_alpha", "allowed_corridors"), "EUR:SEPA:EUR", "t_alpha.allowed_corridors: expected a list of "
                                                                  "corridors like EUR:SEPA:EUR"),
    (("tenants", "t_alpha", "reviewers"), ["op anna; DROP"], "t_alpha.reviewers: expected a list of operator "
                                                             "identifiers"),
])
def test_each_other_shape_the_engine_would_misread_is_named(path, value, problem):
    assert policies_problem(_with(path, value)) == problem


def test_loading_a_weakened_file_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(_with(("tenants", "t_alpha", "max_amount_minor", "EUR"), 5_000_000.5)))
    with pytest.raises(ConfigError, match=rf"^policies file {path}: t_alpha.max_amount_minor.EUR: 5000000.5 is not"):
        load_policies(path)
