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
    (("polciy_format",), 2, "unknown top-level key(s) 'polciy_format' (known: policy_format, tenants, "
                                      "and x-... for shared YAML anchors)"),
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


def _load_text(tmp_path, text: str) -> dict:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return load_policies(path)


POLICY_TEXT = """\
tenants:
  t_alpha:
    max_amount_minor:
      EUR: {limit}
    daily_limit_minor:
      EUR: 57000000
    allowed_corridors: [EUR:SEPA:EUR]
    reviewers: [op_anna]
"""


def test_a_plain_decimal_limit_reads_as_that_integer(tmp_path):
    doc = _load_text(tmp_path, POLICY_TEXT.format(limit="5000000"))
    assert doc["tenants"]["t_alpha"]["max_amount_minor"] == {"EUR": 5_000_000}


@pytest.mark.parametrize("limit", ["0250", "4:10", "5_000_000", "0x10", "0o17", "0b101", "1e6"])
def test_a_yaml_1_1_number_form_is_refused_not_read_as_another_limit(tmp_path, limit):
    # YAML 1.1 reads 0250 as 168 and 4:10 as 250: a limit other than the one written.
    with pytest.raises(ConfigError, match=rf"t_alpha.max_amount_minor.EUR: '{limit}' is not an integer amount"):
        _load_text(tmp_path, POLICY_TEXT.format(limit=limit))


def test_an_explicitly_tagged_octal_integer_is_not_valid_yaml_here(tmp_path):
    with pytest.raises(ConfigError, match=r"is not valid YAML \(ConstructorError\)$"):
        _load_text(tmp_path, POLICY_TEXT.format(limit="!!int 0250"))


@pytest.mark.parametrize(("text", "key"), [
    (POLICY_TEXT.format(limit="5000000\n      EUR: 9000000"), "EUR"),
    (POLICY_TEXT.format(limit="1") + "  t_alpha: {}\n", "t_alpha"),
    (POLICY_TEXT.format(limit="1") + "    reviewers: [op_ben]\n", "reviewers"),
])
def test_a_key_written_twice_is_refused_not_last_one_wins(tmp_path, text, key):
    with pytest.raises(ConfigError, match=rf": key '{key}' appears twice in one mapping \(YAML would keep only the last\)$"):
        _load_text(tmp_path, text)


@pytest.mark.parametrize("reviewers", [[], None, "absent"])
def test_a_tenant_without_reviewers_is_allowed(reviewers):
    doc = copy.deepcopy(GOOD)
    if reviewers == "absent":
        del doc["tenants"]["t_alpha"]["reviewers"]
    else:
        doc["tenants"]["t_alpha"]["reviewers"] = reviewers
    assert policies_problem(doc) is None


def test_a_secret_pasted_as_a_limit_is_described_not_echoed():
    secret = "whsec_" + "A" * 40
    problem = policies_problem(_with(("tenants", "t_alpha", "max_amount_minor", "EUR"), secret))
    assert secret not in problem and "whsec_" not in problem
    assert problem == ("t_alpha.max_amount_minor.EUR: <a text of 46 characters, not shown> is not an integer "
                       "amount in minor units between 0 and 9223372036854775807")


def test_shared_anchors_and_merge_keys_read_as_yaml_says(tmp_path):
    doc = _load_text(tmp_path, """\
x-defaults: &defaults
  max_amount_minor: {EUR: 100}
  daily_limit_minor: {EUR: 1000}
  allowed_corridors: [EUR:SEPA:EUR]
  reviewers: [op_anna]
tenants:
  t_alpha: *defaults
  t_beta:
    <<: *defaults
    reviewers: [op_ben]
""")
    assert doc["tenants"]["t_alpha"]["reviewers"] == ["op_anna"]
    assert doc["tenants"]["t_beta"] == {**doc["tenants"]["t_alpha"], "reviewers": ["op_ben"]}


def test_tenants_may_sit_at_the_top_level_as_in_the_secrets_file(tmp_path):
    wrapped = _load_text(tmp_path, POLICY_TEXT.format(limit="5000000"))
    top = _load_text(tmp_path, POLICY_TEXT.format(limit="5000000").replace("tenants:\n", "").replace("\n  ", "\n")
                     .removeprefix("  "))
    assert top == wrapped
