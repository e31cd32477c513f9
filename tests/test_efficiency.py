"""The efficiency track's score (../shared/docs/kaggle-facts.md, "Efficiency track"), worked by
hand, and the runtime estimate the inference notebook prints before ranking the hidden test."""

from __future__ import annotations

import pytest

from eedi_utils.config import RetrievalConfig
from eedi_utils.efficiency import (
    BASE,
    MAX_MAP,
    EncodingRate,
    RuntimeEstimate,
    efficiency_score,
    has_gpu,
    measure_encoding,
    summary,
)


@pytest.mark.parametrize(
    ("map_at_25", "seconds", "base", "max_map", "expected"),
    [
        (0.5, 0.0, 0.0, 0.5, -1.0),  # 0.5 / (0 - 0.5), no runtime
        (0.3, 3240.0, 0.0, 0.6, -0.4),  # 0.3 / -0.6 = -0.5; 3240 / 32400 = 0.1
        (0.319, 1620.0, BASE, MAX_MAP, -0.45),  # 0.319 / -0.638 = -0.5; + 0.05
        (0.2, 32400.0, 0.1, 0.5, 0.5),  # 0.2 / -0.4 = -0.5; a whole 9 hours adds 1
        (0.0, 0.0, 0.0, 0.638, 0.0),
    ],
)
def test_the_score_by_hand(map_at_25, seconds, base, max_map, expected) -> None:
    assert efficiency_score(map_at_25, seconds, base, max_map) == pytest.approx(expected)


def test_a_better_map_and_a_faster_run_both_lower_the_score() -> None:
    assert efficiency_score(0.40, 600) < efficiency_score(0.39, 600)
    assert efficiency_score(0.40, 600) < efficiency_score(0.40, 601)


def test_the_default_constants_keep_the_facts_rule_of_thumb() -> None:
    """kaggle-facts.md: about 0.01 MAP@25 is worth 8-9 minutes of runtime."""
    worth = 0.01 / (MAX_MAP - BASE) * 32400  # seconds that cost as much as 0.01 MAP@25
    assert 8 * 60 <= worth <= 9 * 60
    assert efficiency_score(0.31, 600 + worth) == pytest.approx(efficiency_score(0.30, 600))


def test_a_base_at_or_above_the_best_or_a_negative_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="Base must lie below maxMAP@25"):
        efficiency_score(0.3, 10, base=0.7, max_map=0.638)
    with pytest.raises(ValueError, match="Base must lie below"):
        efficiency_score(0.3, 10, base=0.5, max_map=0.5)
    with pytest.raises(ValueError, match="runtime_seconds must be >= 0"):
        efficiency_score(0.3, -1)


def test_the_estimate_adds_each_models_start_and_encoding_to_the_time_so_far() -> None:
    rate = EncodingRate("minilm", 2.0, queries_per_second=100.0, documents_per_second=250.0)
    assert rate.seconds(3000, 2500) == pytest.approx(2 + 30 + 10)
    one = RuntimeEstimate(8.0, (rate,), questions=1000, documents=2500)
    assert one.rows == 3000  # three wrong answers a question
    assert one.seconds == pytest.approx(8 + 42)
    two = RuntimeEstimate(8.0, (rate, rate), questions=1000, documents=2500)
    assert two.seconds == pytest.approx(8 + 2 * 42)
    assert str(one).startswith("50 s (0.8 min) for 1000 questions (3000 rows)")
    assert "minilm: start 2.0 s, 100 queries/s, 250 misconceptions/s" in str(one)


REPORT = {  # as metrics.score_report writes it
    "map@25": 0.3,
    "seen": {"map@25": 0.4, "n": 60},
    "unseen": {"map@25": 0.25, "n": 40},
    "map@25_lb": 0.319,
}


def test_the_summary_scores_map25_lb_with_the_hidden_test_estimate() -> None:
    rate = EncodingRate("m", 0.0, 1.0, 1.0)
    hidden = RuntimeEstimate(1320.0, (rate,), questions=100, documents=0)  # 1320 + 300 s
    lines = summary(REPORT, 75.0, 50.0, hidden, cpu_only=True).splitlines()
    assert (
        lines[0]
        == "run time: 75.0 s from the first cell (50.0 s of it would run in the scoring rerun)"
    )
    assert lines[1].startswith("hidden-test runtime estimate: 1620 s (27.0 min)")
    assert lines[2] == "commit-run CV: map@25 0.3000  seen 0.4000  unseen 0.2500  map@25_lb 0.3190"
    assert lines[3] == (  # 0.319 / -0.638 + 1620 / 32400 = -0.5 + 0.05
        "efficiency score estimate: -0.4500 (lower is better) = map@25_lb 0.3190 / "
        "(0.0 - 0.638) + 1620 s (hidden-test estimate) / 32400"
    )


def test_the_summary_without_an_estimate_a_cv_or_a_cpu_only_session() -> None:
    alone = summary(REPORT, 75.0, 3240.0, None, cpu_only=True, base=0.0, max_map=0.638)
    assert alone.splitlines()[-1].startswith("efficiency score estimate: -0.4000")  # -0.5 + 0.1
    assert "(this run's scoring-rerun share)" in alone
    rerun = summary(None, 40.0, 40.0, None, cpu_only=True)
    assert (
        rerun.splitlines()[-1] == "efficiency score: no CV on this run, so no MAP@25 to put in it"
    )
    one_sided = summary({**REPORT, "map@25_lb": None}, 75.0, 3240.0, None, cpu_only=True)
    assert "map@25_lb none (a side has no rows)" in one_sided
    assert "-0.3702 (lower is better) = map@25 0.3000 / (0.0 - 0.638)" in one_sided  # + 0.1
    top_50 = {
        "map@50": 0.3,
        "seen": {"map@50": 0.4},
        "unseen": {"map@50": 0.25},
        "map@50_lb": 0.319,
    }
    assert "= map@50_lb 0.3190 / " in summary(top_50, 75.0, 3240.0, None, cpu_only=True, k=50)
    gpu = summary(REPORT, 75.0, 50.0, None, cpu_only=False)
    assert "not eligible, this session has a GPU" in gpu and "score estimate" not in gpu


def test_measuring_loads_the_model_and_times_a_batch_of_each_kind(tiny_model) -> None:
    config = RetrievalConfig(batch_size=4, show_progress=False)
    queries = [f"What is {n} + {n}? Answer: {3 * n}" for n in range(10)]
    (rate,) = measure_encoding([tiny_model], queries, ["Adds instead of multiplies"] * 6, config)
    assert rate.model == tiny_model.name
    assert rate.start_seconds > 0 and rate.queries_per_second > 0 < rate.documents_per_second


def test_a_gpu_is_found_without_importing_torch(tmp_path, monkeypatch) -> None:
    """An export's run never imports torch: the GPU is then read from the device nodes a
    container is given (/dev/nvidia0 per GPU; nvidiactl and nvidia-uvm come without one)."""
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    (tmp_path / "nvidiactl").touch()
    (tmp_path / "nvidia-uvm").touch()
    assert not has_gpu(tmp_path)
    (tmp_path / "nvidia0").touch()
    assert has_gpu(tmp_path)
