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


def test_docs_config_reference_is_generated_from_the_dataclasses() -> None:
    from pathlib import Path

    from eedi_utils.config import config_reference

    docs = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert docs.read_text(encoding="utf-8") == config_reference(), (
        "docs/config.md is stale: run python scripts/write_config_reference.py"
    )
    for key in ("negative_ranges", "windows", "wheel_requirements", "per_misconception"):
        assert f"| `{key}` |" in config_reference()


def test_overrides_apply_on_top_of_the_file_and_are_checked(tmp_path) -> None:
    from eedi_utils.config import with_parameters

    path = tmp_path / "kit.toml"
    path.write_text("[train]\nepochs = 3\nbatch_size = 16\n")
    overrides = with_parameters({"train": {"lora_r": 8}}, train={"epochs": 1, "val_fold": None})
    assert overrides == {"train": {"lora_r": 8, "epochs": 1}}
    config = load_config(path, overrides)
    assert (config.train.epochs, config.train.batch_size, config.train.lora_r) == (1, 16, 8)
    assert config.train.val_fold == 0  # None means "as the config says"
    with pytest.raises(ConfigError, match=r"overrides \[train\]\.epochs: expected int"):
        load_config(path, {"train": {"epochs": "two"}})
