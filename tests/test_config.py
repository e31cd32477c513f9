"""TOML config: sections, defaults, type checks and clear errors."""

from __future__ import annotations

import pytest

from eedi_utils.config import ConfigError, KitConfig, load_config


def test_defaults_and_partial_override(tmp_path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(
        '[retrieval]\nmodels = ["a", "b"]\ntop_k = 10\n\n[evaluate]\nfolds = 3\n'
        '[text]\nquery_instruction = "Query: "\n'
    )
    config = load_config(path)
    assert config.retrieval.models == ["a", "b"] and config.retrieval.top_k == 10
    assert config.retrieval.batch_size == KitConfig().retrieval.batch_size
    assert config.evaluate.folds == 3 and config.text.query_instruction == "Query: "
    assert load_config(None) == KitConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retrieval]\ntop_k = 'ten'\n", r"\[retrieval\].top_k: expected int"),
        ("[retrieval]\nmodels = 'one'\n", r"\[retrieval\].models: expected a list"),
        ("[retrieval]\nshow_progress = 1\n", "expected bool"),
        ("[training]\nepochs = 1\n", r"unknown section\(s\) \['training'\]"),
        ("[evaluate]\nfold = 1\n", r"unknown key\(s\) \['fold'\]"),
        ("[evaluate\n", "not valid TOML"),
    ],
)
def test_bad_config_is_named(tmp_path, text, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.toml")
