"""LLM data generation against a local OpenAI-compatible server with faults on demand:
paraphrase and synthesize output, retries, re-asks, cache and resume, cost cap, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest
from llm_server import FakeLLM
from test_notebook import execute, paraphrase_notebook

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.generate.cache import JsonlCache, cache_key
from eedi_utils.generate.paraphrase import paraphrase, usable_paraphrases
from eedi_utils.generate.settings import GenerateConfig
from eedi_utils.generate.synthesize import synthesize, unseen_misconceptions
from eedi_utils.train.retriever.data import prepare_data


@pytest.fixture()
def server():
    with FakeLLM() as fake:
        yield fake


def settings(server: FakeLLM, **changes) -> GenerateConfig:
    base = GenerateConfig(
        model="test-model",
        base_url=server.base_url,
        api_key_env="EEDI_TEST_KEY",
        timeout=1.0,
        max_retries=3,
        concurrency=4,
        prices={"test-model": [1000.0, 1000.0]},
    )
    return replace(base, **changes)


def test_cache_skips_a_torn_line_and_keys_on_every_input(tmp_path) -> None:
    path = tmp_path / "cache.jsonl"
    cache = JsonlCache(path)
    first = cache_key("question", "What is 2+2?", "v1", "m", 4)
    cache.put(first, {"value": ["a"]})
    with path.open("a") as out:
        out.write('{"key": "torn", "val')  # a kill in the middle of a write
    reopened = JsonlCache(path)
    assert reopened.torn_lines == 1 and first in reopened and len(reopened) == 1
    second = cache_key("question", "What is 3+3?", "v1", "m", 4)
    reopened.put(second, {"value": ["b"]})
    assert len(JsonlCache(path)) == 2  # the new entry starts on a fresh line
    variants = {
        cache_key(*args)
        for args in [
            ("question", "t", "v1", "m", 4),
            ("misconception", "t", "v1", "m", 4),
            ("question", "u", "v1", "m", 4),
            ("question", "t", "v2", "m", 4),
            ("question", "t", "v1", "other", 4),
            ("question", "t", "v1", "m", 5),
        ]
    }
    assert len(variants) == 6


def test_usable_paraphrases_drop_empty_duplicate_and_copied_texts() -> None:
    answer = {"paraphrases": ["", "  Add the tens ", "add the  TENS", "Orig text", "New one"]}
    assert usable_paraphrases("orig  text", [], answer) == ["Add the tens", "New one"]
    assert usable_paraphrases("x", ["New one"], {"paraphrases": ["new one", "b"]}) == [
        "New one",
        "b",
    ]


def test_paraphrase_writes_a_data_folder_ready_for_training(tmp_path, sample, server) -> None:
    data = CompetitionData(sample)
    summary = paraphrase(data, tmp_path / "out", settings(server), progress=False)
    questions = pd.read_csv(sample / "train.csv")
    n_items = len(questions) + len(data.misconceptions)
    assert (summary.done, summary.failed, summary.short) == (n_items, 0, 0)
    assert summary.calls == n_items and summary.cost > 0

    out = CompetitionData(tmp_path / "out")
    written = pd.read_csv(tmp_path / "out" / "train.csv", dtype=str, keep_default_na=False)
    assert len(written) == 5 * len(questions)
    assert (written["Generated"][: len(questions)] == "False").all()  # originals first
    assert (written["Generated"][len(questions) :] == "True").all()
    pd.testing.assert_frame_equal(out.train(), data.train())  # evaluation sees real rows only
    assert len(out.misconception_variants()) == 4 * len(data.misconceptions)
    pd.testing.assert_frame_equal(out.misconceptions, data.misconceptions)
    generated = written[written["Generated"] == "True"]
    first = generated[generated["SourceQuestionId"] == str(questions["QuestionId"].iloc[0])]
    assert len(first) == 4 and first["QuestionText"].str.contains("(version", regex=False).all()
    assert first["MisconceptionBId"].tolist() == [written["MisconceptionBId"].iloc[0]] * 4

    config = KitConfig()
    config.evaluate.folds = 3
    prepared = prepare_data(out, config)
    baseline = prepare_data(data, config)
    assert len(prepared.queries) == 5 * len(baseline.queries)  # paraphrases of train-fold rows
    assert prepared.val_queries == baseline.val_queries
    assert sum(len(v) for v in prepared.variants.values()) == 4 * len(data.misconceptions)
    assert prepared.positives(prepared.round_texts(0)) != prepared.positives(
        prepared.round_texts(1)
    )  # names vary by round


def test_transport_faults_are_retried_and_bad_answers_asked_again(tmp_path, sample, server) -> None:
    data = CompetitionData(sample)
    names = data.misconceptions["MisconceptionName"].tolist()
    faults = ["429", "500", "drop", "hang", "malformed", "short", "messy"]
    for name, fault in zip(names, faults):
        server.script[name] = [fault]
    server.script[names[len(faults)]] = ["500"] * 10  # keeps failing: counted, skipped
    server.script[names[len(faults) + 1]] = ["malformed"] * 10  # never usable
    config = settings(server, timeout=0.5, max_retries=2)
    summary = paraphrase(data, tmp_path / "out", config, progress=False)
    assert summary.failed == 2 and summary.short == 0
    variants = CompetitionData(tmp_path / "out").misconception_variants()
    counts = variants.groupby("MisconceptionId").size()
    assert len(counts) == len(names) - 2 and (counts == 4).all()
    for name in names[:5]:  # one failed attempt, then the answer
        assert server.requests[name] == 2, name
    assert server.requests[names[5]] == 2  # too few: asked again, the rest arrives
    assert server.requests[names[6]] == 1  # messy but enough after cleaning
    assert server.requests[names[7]] == 3  # 1 + max_retries, then given up
    assert server.requests[names[8]] == config.max_attempts

    server.script.clear()  # the rerun retries only the two failures
    before = sum(server.requests.values())
    again = paraphrase(data, tmp_path / "out", config, progress=False)
    assert (again.done, again.cached, again.calls) == (2, summary.done, 2)
    assert sum(server.requests.values()) == before + 2


def test_short_answers_are_recorded_after_bounded_asks(tmp_path, sample, server) -> None:
    data = CompetitionData(sample)
    name = data.misconceptions["MisconceptionName"].iloc[0]
    server.script[name] = ["short"] * 10  # the same single paraphrase every time
    summary = paraphrase(data, tmp_path / "out", settings(server), progress=False)
    assert summary.short == 1 and summary.failed == 0
    assert server.requests[name] == 3
    variants = CompetitionData(tmp_path / "out").misconception_variants()
    first_id = data.misconceptions["MisconceptionId"].iloc[0]
    assert (variants["MisconceptionId"] == first_id).sum() == 1


def test_cost_cap_stops_cleanly_and_a_rerun_finishes(tmp_path, sample, server) -> None:
    data = CompetitionData(sample)
    config = settings(server, concurrency=1, max_cost=2.0)
    capped = paraphrase(data, tmp_path / "out", config, progress=False)
    assert capped.skipped > 0 and capped.done > 0
    assert 2.0 <= capped.cost < 2.0 + capped.cost / capped.calls * 1.5  # stops at the cap
    assert len(JsonlCache(tmp_path / "out" / "cache.jsonl")) == capped.done
    assert (tmp_path / "out" / "train.csv").exists()  # finished work written
    rest = paraphrase(data, tmp_path / "out", replace(config, max_cost=0.0), progress=False)
    assert rest.cached == capped.done and rest.done == capped.skipped
    assert sum(server.requests.values()) == capped.calls + rest.calls


def test_synthesize_keeps_only_judged_questions_for_unseen_misconceptions(
    tmp_path, sample, server
) -> None:
    data = CompetitionData(sample)
    unseen = unseen_misconceptions(data)
    judged = f"Misconception: {unseen['MisconceptionName'].iloc[0]}\n\nAccept"  # judge prompts only
    server.script[judged] = ["reject", "reject"]
    summary = synthesize(
        data, tmp_path / "out", settings(server, per_misconception=2), progress=False
    )
    assert summary.done == 2 * len(unseen) and summary.rejected == 2
    out = CompetitionData(tmp_path / "out")
    pd.testing.assert_frame_equal(out.train(), data.train())
    written = pd.read_csv(tmp_path / "out" / "train.csv", dtype=str, keep_default_na=False)
    new = written[written["Generated"] == "True"]
    assert len(new) == 2 * len(unseen) - 2 and (new["SourceQuestionId"] == "").all()
    labels = set(new["MisconceptionBId"].astype(int))
    assert labels == set(unseen["MisconceptionId"].iloc[1:])  # the first was rejected twice
    config = KitConfig()
    config.evaluate.folds = 3
    assert labels <= set(prepare_data(out, config).gold.tolist())
    assert set(unseen["MisconceptionId"]).isdisjoint(labelled(data.train())["MisconceptionId"])


def eedi(*args: str, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.Popen(
        [sys.executable, "-m", "eedi_utils.cli", *args],
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_dry_run_calls_nothing_and_needs_no_key(tmp_path, sample, server) -> None:
    run = eedi("paraphrase", "--data-dir", str(sample), "--out", str(tmp_path / "o"), "--dry-run")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "dry run, gpt-4o-mini: 158 calls" in out and "$" in out
    assert sum(server.requests.values()) == 0 and not (tmp_path / "o" / "train.csv").exists()


def test_missing_key_is_a_clear_error(tmp_path, sample) -> None:
    run = eedi("paraphrase", "--data-dir", str(sample), "--out", str(tmp_path / "o"))
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2 and "$OPENAI_API_KEY is not set" in err


def test_killed_run_resumes_without_losing_or_repeating_work(tmp_path, sample) -> None:
    secret = "sk-test-do-not-print-0123456789"
    out = tmp_path / "out"
    args = [
        "paraphrase",
        "--data-dir",
        str(sample),
        "--out",
        str(out),
        "--generate-concurrency",
        "2",
    ]
    with FakeLLM(delay=0.05) as slow:
        args += ["--generate-base-url", slow.base_url, "--generate-model", "test-model"]
        first = eedi(*args, OPENAI_API_KEY=secret)
        cache = out / "cache.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and (
            not cache.exists() or len(cache.read_text().splitlines()) < 40
        ):
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        done_before = len(JsonlCache(cache))
        assert 40 <= done_before < 158
        requests_before = sum(slow.requests.values())
        second = eedi(*args, OPENAI_API_KEY=secret)
        stdout, stderr = second.communicate(timeout=300)
        assert second.returncode == 0, stderr
    assert f"done {158 - done_before} (short 0), cached {done_before}, failed 0" in stdout
    in_flight = requests_before - done_before  # paid when killed, asked again
    assert 0 <= in_flight <= 2
    assert sum(slow.requests.values()) == requests_before + 158 - done_before
    assert max(slow.requests.values()) <= 2
    assert len(JsonlCache(cache)) == 158  # each item once
    written = CompetitionData(out)
    assert len(written.misconception_variants()) == 4 * len(written.misconceptions)
    for path in [*out.iterdir()]:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in stdout + stderr
    assert json.loads(cache.read_text().splitlines()[0])["value"]


def test_paraphrase_notebook_runs_both_steps(tmp_path, sample, server, monkeypatch) -> None:
    """As a notebook (its parameters set in the parameters cell, as Kaggle runs it): the
    runner's event loop runs beside the kernel's."""
    monkeypatch.delenv("EEDI_CONFIG", raising=False)
    monkeypatch.setenv("EEDI_DATA_DIR", str(sample))
    notebook = paraphrase_notebook(
        BASE_URL=server.base_url, MODEL="test-model", OUTPUT_DIR=str(tmp_path / "gen")
    )
    printed = execute(notebook, tmp_path)
    assert printed.count("expected:") == 2 and "synthesize: done" in printed
    final = CompetitionData(tmp_path / "gen" / "synthesized")
    assert len(final.misconception_variants()) == 4 * len(final.misconceptions)
    written = pd.read_csv(tmp_path / "gen" / "synthesized" / "train.csv", dtype=str)
    assert (written["Generated"] == "True").sum() == 4 * 41 + 2 * 39
