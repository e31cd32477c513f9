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
    import runpy
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    config_reference = runpy.run_path(str(repo / "scripts" / "write_config_reference.py"))[
        "config_reference"
    ]
    docs = repo / "docs" / "config.md"
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[train]\nloss = "focal"\n',
            r"\[train\].loss: 'focal' is not one of .*'mnrl', 'cached_mnrl'",
        ),
        ('[retrieval]\nfusion = "max"\n', r"\[retrieval\].fusion: 'max' .*'mean', 'rrf'"),
        ('[evaluate]\ngroup_by = "Subject"\n', r"\[evaluate\].group_by: 'Subject' "),
        ('[train]\nmixed_precision = "fp8"\n', r"'fp8' is not one of .*'bf16', 'fp16', 'no'"),
        ("[retrieval]\nload_in_bits = 6\n", r"\[retrieval\].load_in_bits: 6 .*0, 4, 8"),
        ("[train]\nbatch_size = 0\n", r"\[train\].batch_size: 0 is out of range; allowed: >= 1"),
        ("[evaluate]\nlb_unseen_share = 1.5\n", r"lb_unseen_share: 1.5 .*allowed: in \[0, 1\]"),
        ("[evaluate]\nfolds = 1\n", r"\[evaluate\].folds: 1 .*allowed: >= 2"),
        (
            "[evaluate]\nfolds = 3\n[train]\nval_fold = 3\n",
            r"\[train\].val_fold: 3 is not a fold of .*\[evaluate\].folds = 3; allowed: -1 "
            r"\(none\) to 2",
        ),
        ("[train_reranker]\nval_fold = 5\n", r"\[train_reranker\].val_fold: 5 .*-1 \(none\) to 4"),
        ("[train]\nnegative_ranges = [[5, 2]]\n", r"negative_ranges\[0\]: \[5, 2\]"),
    ],
)
def test_choices_ranges_and_fold_indices_are_checked_at_load(tmp_path, text, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_an_override_is_named_by_its_source(tmp_path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text("[evaluate]\nfolds = 3\n")
    with pytest.raises(ConfigError, match=rf"--val-fold \[train\].val_fold: 4 .*{path}"):
        load_config(path, {"train": {"val_fold": 4}}, {("train", "val_fold"): "--val-fold"})
    with pytest.raises(ConfigError, match=r"^overrides \[train\].loss: 'x'"):
        load_config(path, {"train": {"loss": "x"}})


def test_good_choices_still_load(tmp_path) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(
        '[retrieval]\nfusion = "rrf"\ndtype = "float16"\nload_in_bits = 4\n'
        '[evaluate]\nfolds = 3\ngroup_by = "QuestionId"\n'
        '[train]\nloss = "cached_mnrl"\nval_fold = 2\nmixed_precision = "no"\n'
        '[rerank]\nbackend = "transformers"\nmode = "pointwise"\n'
        '[train_reranker]\nval_fold = -1\nquantize_bits = 8\nsave_dtype = "bfloat16"\n'
    )
    config = load_config(path)
    assert (config.retrieval.fusion, config.train.loss, config.train.val_fold) == (
        "rrf",
        "cached_mnrl",
        2,
    )
    assert config.rerank.mode == "pointwise" and config.train_reranker.quantize_bits == 8
