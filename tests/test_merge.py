"""`eedi merge`: averaged fine-tunes and WiSE-FT interpolation, as plain model folders."""

from __future__ import annotations

import json

import pytest
import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.cli import main
from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData
from eedi_utils.merge import merge_models
from eedi_utils.pipeline import NothingToScore, evaluate, held_out_fold
from eedi_utils.prior import UnseenPrior, read_prior, write_prior


def shifted(tiny_model, folder, amount: float):
    """A copy of the tiny model with `amount` added to every weight: a stand-in fine-tune."""
    model = SentenceTransformer(str(tiny_model), device="cpu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(amount)
    model.save(str(folder))
    return folder


def weights(folder) -> dict[str, torch.Tensor]:
    return SentenceTransformer(str(folder), device="cpu").state_dict()


def test_average_and_interpolation_are_exact(tiny_model, tmp_path) -> None:
    a, b = shifted(tiny_model, tmp_path / "a", 0.2), shifted(tiny_model, tmp_path / "b", 0.6)
    base, wa, wb = weights(tiny_model), weights(a), weights(b)
    averaged = weights(merge_models([a, b], tmp_path / "avg"))
    wise = weights(merge_models([a, b], tmp_path / "wise", base=tiny_model, alpha=0.25))
    key = next(k for k, v in base.items() if v.is_floating_point() and v.numel() > 10)
    assert torch.allclose(averaged[key], (wa[key] + wb[key]) / 2, atol=1e-6)
    expected = 0.75 * base[key] + 0.25 * (wa[key] + wb[key]) / 2
    assert torch.allclose(wise[key], expected, atol=1e-6)
    assert torch.allclose(
        weights(merge_models([a], tmp_path / "zero", tiny_model, 0.0))[key], base[key]
    )


def test_refusals(tiny_model, tmp_path, tiny_qwen) -> None:
    with pytest.raises(ValueError, match="not the architecture of"):
        merge_models([tiny_model, tiny_qwen], tmp_path / "x")
    with pytest.raises(ValueError, match="name it"):
        merge_models([tiny_model], tmp_path / "x", alpha=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        merge_models([tiny_model], tmp_path / "x", tiny_model, alpha=1.5)


def test_cli_merge_writes_a_folder_predict_loads_and_keeps_the_priors_ids(
    tiny_model, sample, tmp_path
) -> None:
    a, b = shifted(tiny_model, tmp_path / "a", 0.1), shifted(tiny_model, tmp_path / "b", 0.3)
    write_prior(a, UnseenPrior(0.05, frozenset({1, 2})), "test")
    write_prior(b, UnseenPrior(0.09, frozenset({2, 3})), "test")
    out = tmp_path / "merged"
    args = ["merge", "--model", str(a), "--model", str(b), "--base", str(tiny_model)]
    assert main([*args, "--alpha", "0.7", "--out", str(out), "--quiet"]) == 0
    prior = read_prior(out)
    assert prior.strength == pytest.approx(0.07) and prior.labelled_ids == frozenset({1, 2, 3})
    assert "retune it" in json.loads((out / "unseen_prior.json").read_text())["source"]
    assert not (out / "resolved_config.json").exists()  # no member records any training
    submission = tmp_path / "submission.csv"
    predict = ["predict", "--data-dir", str(sample), "--model", str(out), "--out", str(submission)]
    assert main([*predict, "--quiet"]) == 0 and submission.exists()


def recorded(folder, val_fold: int, folds: int = 3) -> None:
    config = KitConfig().to_dict()
    config["train"]["val_fold"] = val_fold
    config["evaluate"]["folds"] = folds
    (folder / "resolved_config.json").write_text(json.dumps(config))


def test_a_merged_model_keeps_what_its_members_trained_on(tiny_model, sample, tmp_path) -> None:
    """Merged models used to lose their held-out fold, so CV scored rows they trained on."""
    a, b = shifted(tiny_model, tmp_path / "a", 0.1), shifted(tiny_model, tmp_path / "b", 0.3)
    c, d = shifted(tiny_model, tmp_path / "c", 0.2), shifted(tiny_model, tmp_path / "d", 0.4)
    recorded(a, 1), recorded(b, 1), recorded(c, 2)
    seeds = merge_models([a, b], tmp_path / "seeds", tiny_model, 0.8)
    assert held_out_fold([seeds], KitConfig()).fold == 1  # two seeds of one fold: that fold
    config = json.loads((seeds / "resolved_config.json").read_text())
    assert [m["val_fold"] for m in config["merged_from"]] == [1, 1]
    assert config["merge"] == {"alpha": 0.8, "base": str(tiny_model)}
    assert evaluate(CompetitionData(sample), [seeds], KitConfig())["fold"] == 1

    folds = merge_models([a, c], tmp_path / "folds")  # a soup of folds saw every row
    with pytest.raises(NothingToScore, match="trained on every labelled row"):
        evaluate(CompetitionData(sample), [folds], KitConfig())

    unknown = merge_models([a, d], tmp_path / "unknown")  # d records nothing
    with pytest.raises(NothingToScore, match="no record of their training rows"):
        evaluate(CompetitionData(sample), [unknown], KitConfig())

    recorded(d, 1, folds=5)
    with pytest.raises(ValueError, match="different splits"):
        merge_models([a, d], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()  # refused before anything was written


def test_a_wise_ft_base_that_trained_counts_and_a_plain_base_does_not(tiny_model, tmp_path):
    """With alpha < 1 the base's weights are in the merge: a base trained on every row makes
    the merge one too; a base with no record is a base model and changes nothing."""
    a = shifted(tiny_model, tmp_path / "a", 0.1)
    full = shifted(tiny_model, tmp_path / "full", 0.2)
    recorded(a, 0), recorded(full, -1, folds=5)
    leaky = merge_models([a], tmp_path / "leaky", base=full, alpha=0.5)
    assert held_out_fold([leaky], KitConfig()).fold is None
    plain = merge_models([a], tmp_path / "plain", base=tiny_model, alpha=0.5)
    assert held_out_fold([plain], KitConfig()).fold == 0
    merge_models([tiny_model], tmp_path / "plain")  # over an earlier merge: no stale record
    assert not (tmp_path / "plain" / "resolved_config.json").exists()
