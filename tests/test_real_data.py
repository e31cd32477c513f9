"""Zero-shot all-MiniLM-L6-v2 on the real train set lands where it is known to."""

from __future__ import annotations

import pytest

from eedi_utils import pipeline
from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData


@pytest.mark.slow
def test_zero_shot_minilm_on_full_train(real_data) -> None:
    config = KitConfig()
    config.retrieval.show_progress = False
    report = pipeline.evaluate(CompetitionData(real_data), None, config)
    assert report["n"] == 4370
    assert 0.16 <= report["map@25"] <= 0.20, report
    assert report["seen"]["n"] + report["unseen"]["n"] == 4370
