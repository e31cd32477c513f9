"""The LLM stage: window logic with a scripted backend, the transformers backend on
SmolLM2-135M-Instruct, the hypothesis joining the query, and `eedi predict` with both stages."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_notebook import assert_valid_submission
from transformers import AutoModelForCausalLM, AutoTokenizer

from eedi_utils import pipeline
from eedi_utils.config import KitConfig, RerankConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.extras import MissingExtra
from eedi_utils.rerank.backends import TransformersBackend, chat_ids, single_token_ids
from eedi_utils.rerank.scoring import LABELS, listwise_messages, rerank


class ScriptedBackend:
    """Scores the options of a listwise prompt: +5 for the favourite misconception, plus a
    bias of `bias` per label position (a model that likes late labels when bias > 0)."""

    def __init__(self, tokenizer, favourite: str = "", bias: float = 0.0):
        self.tokenizer, self.favourite, self.bias = tokenizer, favourite, bias
        self.prompts = 0

    def choice_logprobs(self, prompts, token_ids):
        rows = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            options = re.findall(r"^([A-Z])\. (.*)$", text, re.MULTILINE)
            assert [label for label, _ in options] == list(LABELS[: len(token_ids)])
            scores = np.array(
                [
                    5.0 * (name == self.favourite) + self.bias * i
                    for i, (_, name) in enumerate(options)
                ]
            )
            rows.append(torch.tensor(scores).log_softmax(-1).numpy())
            self.prompts += 1
        return np.array(rows)


@pytest.fixture(scope="module")
def rows(sample):
    data = CompetitionData(sample)
    long = labelled(data.train()).head(3)
    ids = data.misconceptions["MisconceptionId"].to_numpy()
    ranked = np.stack([np.roll(ids, -30 * i)[:25] for i in range(len(long))])  # disjoint rows
    return data, long, ranked


def test_windows_slide_the_favourite_up_and_leave_other_ranks_alone(rows, smollm2) -> None:
    data, long, ranked = rows
    names = dict(
        zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
    )
    favourite_id = ranked[0, 14]  # rank 15 of the first row
    backend = ScriptedBackend(AutoTokenizer.from_pretrained(smollm2), names[favourite_id])
    config = RerankConfig(windows=[[8, 17], [1, 10]], reverse_pass=False)
    out = rerank(long, ranked, data.misconceptions, backend, config)
    assert out[0, 0] == favourite_id  # 15 -> 8 in the first window, 8 -> 1 in the second
    assert list(out[0, 1:8]) == list(ranked[0, :7])
    assert (out[:, 17:] == ranked[:, 17:]).all()  # the tail keeps its place
    assert (out[1:] == ranked[1:]).all()  # no favourite, label bias 0: order kept
    assert all(len(set(row)) == 25 for row in out)
    assert backend.prompts == 2 * len(long)


def test_reverse_pass_outweighs_a_label_position_bias(rows, smollm2) -> None:
    data, long, ranked = rows
    names = dict(
        zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
    )
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    last = ranked[0, 9]  # the right answer sits at the last label of the window
    early = ScriptedBackend(tokenizer, favourite=names[last], bias=-1.0)  # likes early labels
    once = rerank(
        long,
        ranked,
        data.misconceptions,
        early,
        RerankConfig(windows=[[1, 10]], reverse_pass=False),
    )
    assert once[0, 0] == ranked[0, 0] != last  # the bias wins: 5 - 9 < 0 - 0
    twice = rerank(long, ranked, data.misconceptions, early, RerankConfig(windows=[[1, 10]]))
    assert twice[0, 0] == last  # averaged with the reversed window: (5 - 9 + 5) / 2 > (0 - 9) / 2
    assert early.prompts == 3 * len(long)  # one pass, then two


def test_labels_and_yes_no_are_single_tokens_and_others_are_refused(smollm2) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert len(set(single_token_ids(tokenizer, list(LABELS)))) == 26
    assert len(single_token_ids(tokenizer, ["Yes", "No"])) == 2
    with pytest.raises(ValueError, match="not 1"):
        single_token_ids(tokenizer, ["Misconception"])


def test_transformers_backend_matches_an_unbatched_forward(rows, smollm2) -> None:
    data, long, ranked = rows
    backend = TransformersBackend(smollm2, RerankConfig(batch_size=3, dtype="float32"), "cpu")
    names = data.misconceptions.set_index("MisconceptionId")["MisconceptionName"]
    prompts = [
        chat_ids(backend.tokenizer, listwise_messages(row, list(names[ranked[i, : 2 + i]])))
        for i, (_, row) in enumerate(long.iterrows())
    ]
    assert len({len(p) for p in prompts}) == 3  # left padding is exercised
    labels = single_token_ids(backend.tokenizer, list(LABELS[:2]))
    batched = backend.choice_logprobs(prompts, labels)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    for prompt, scores in zip(prompts, batched):
        with torch.inference_mode():
            logits = model(torch.tensor([prompt])).logits[0, -1]
        np.testing.assert_allclose(scores, logits[labels].log_softmax(-1).numpy(), atol=2e-4)
    assert np.allclose(np.exp(batched).sum(axis=1), 1.0, atol=1e-5)


def test_listwise_and_pointwise_reorder_windows_with_smollm2(rows, smollm2) -> None:
    data, long, ranked = rows
    long, ranked = long.head(2), ranked[:2]
    for mode in ("listwise", "pointwise"):
        config = RerankConfig(model=str(smollm2), mode=mode, windows=[[1, 4]], dtype="float32")
        out = rerank(
            long, ranked, data.misconceptions, TransformersBackend(smollm2, config), config
        )
        assert (np.sort(out[:, :4], axis=1) == np.sort(ranked[:, :4], axis=1)).all(), mode
        assert (out[:, 4:] == ranked[:, 4:]).all(), mode


def test_hypothesis_joins_the_query_before_retrieval(
    rows, smollm2, tiny_model, monkeypatch
) -> None:
    data, long, _ = rows
    seen = {}
    retrieve = pipeline.retrieve

    def spy(queries, *args, **kwargs):
        seen["queries"] = queries
        return retrieve(queries, *args, **kwargs)

    monkeypatch.setattr(pipeline, "retrieve", spy)
    config = KitConfig()
    config.retrieval.show_progress = False
    config.rerank = RerankConfig(
        hypothesis=True, model=str(smollm2), hypothesis_tokens=8, separate_process=False
    )
    ranked = pipeline.rank_misconceptions(long.head(2), data, [tiny_model], config)
    assert ranked.shape == (2, 25)
    for query in seen["queries"]:
        prefix, _, guess = query.partition(f"\n{pipeline.HYPOTHESIS_PREFIX}")
        assert prefix and guess.strip()  # the original query, then the model's sentence


@pytest.mark.slow
def test_eedi_predict_runs_both_stages_in_a_child_process(tmp_path, sample, smollm2, tiny_model):
    config = tmp_path / "kit.toml"
    config.write_text(
        f'[retrieval]\nmodels = ["{tiny_model}"]\nshow_progress = false\n'
        f'[rerank]\nenabled = true\nhypothesis = true\nmodel = "{smollm2}"\n'
        'windows = [[1, 3]]\nhypothesis_tokens = 8\nbackend = "transformers"\n'
    )
    out = tmp_path / "submission.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "eedi_utils.cli",
            "predict",
            "--data-dir",
            str(sample),
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_valid_submission(out, sample)


def test_a_missing_vllm_is_explained(smollm2) -> None:
    from eedi_utils.rerank.stage import load_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed in this environment")
    with pytest.raises(MissingExtra, match=r"pip install 'eedi-kit\[vllm\]'"):
        load_backend(RerankConfig(model=str(smollm2), backend="vllm"))
