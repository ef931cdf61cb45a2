"""secrets.json is refused, never half-read: a key given twice, a secret where a name belongs."""

from __future__ import annotations

import base64

import pytest

from zentra_pipelines.adapters.config import ConfigError, load_webhook_keys

SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 32).decode()


def load(tmp_path, text: str):
    path = tmp_path / "secrets.json"
    path.write_text(text)
    return load_webhook_keys(path)


def test_rotation_secrets_load_in_order(tmp_path):
    keys = load(tmp_path, f'{{"t_alpha": {{"acme_pay": ["{SECRET_A}", "{SECRET_B}"]}}}}')
    assert keys.select("tenant_id", "provider", "secret_index").rows() == [
        ("t_alpha", "acme_pay", 0), ("t_alpha", "acme_pay", 1)
    ]


@pytest.mark.parametrize(
    "text",
    [
        f'{{"t_alpha": {{"acme_pay": ["{SECRET_A}"], "acme_pay": ["{SECRET_B}"]}}}}',
        f'{{"t_alpha": {{"acme_pay": ["{SECRET_A}"]}}, "t_alpha": {{"zeta_pay": ["{SECRET_B}"]}}}}',
    ],
)
def test_a_key_given_twice_is_refused(tmp_path, text):
    """JSON keeps the last value: the first provider's secrets (or tenant) would vanish."""
    with pytest.raises(ConfigError, match="appears twice") as err:
        load(tmp_path, text)
    assert "whsec_" not in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        f'{{"t_alpha": {{"{SECRET_A}": ["{SECRET_B}"]}}}}',
        f'{{"{SECRET_A}": {{"acme_pay": ["{SECRET_B}"]}}}}',
        '{"t_alpha": {"whsec_abc": ["whsec_abc"]}}',
        f'{{"t_alpha": {{"{SECRET_A}": ["{SECRET_B}"], "{SECRET_A}": []}}}}',
    ],
)
def test_a_secret_where_a_name_belongs_is_refused_unshown(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert "whsec_" not in str(err.value)
    assert "not shown" in str(err.value)
