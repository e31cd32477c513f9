"""`eedi merge`: averaged fine-tunes and WiSE-FT interpolation, as plain model folders."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.cli import main
from eedi_utils.merge import merge_models
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
    write_prior(a, UnseenPrior(0.05, frozenset({1, 2})))
    write_prior(b, UnseenPrior(0.09, frozenset({2, 3})))
    out = tmp_path / "merged"
    args = ["merge", "--model", str(a), "--model", str(b), "--base", str(tiny_model)]
    assert main([*args, "--alpha", "0.7", "--out", str(out), "--quiet"]) == 0
    prior = read_prior(out)
    assert prior.strength == 0.05 and prior.labelled_ids == frozenset({1, 2, 3})
    submission = tmp_path / "submission.csv"
    predict = ["predict", "--data-dir", str(sample), "--model", str(out), "--out", str(submission)]
    assert main([*predict, "--quiet"]) == 0 and submission.exists()
