"""`eedi train-reranker` with each process's hold on its training model (from `load_model`'s
start to `release`'s end) and each held-out evaluation (`evaluate`'s start and end) recorded
as `{"event", "time"}` lines in $EEDI_EVENTS/rank-$RANK.jsonl; run under torchrun by
tests/test_ddp.py."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from eedi_utils.cli import main
from eedi_utils.train.reranker.run import RerankerTraining


def record(event: str) -> None:
    path = Path(os.environ["EEDI_EVENTS"]) / f"rank-{os.environ['RANK']}.jsonl"
    with path.open("a") as events:
        events.write(json.dumps({"event": event, "time": time.time()}) + "\n")


def traced(method: Callable, start: str | None, end: str | None) -> Callable:
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if start:
            record(start)
        result = method(*args, **kwargs)
        if end:
            record(end)
        return result

    return wrapper


RerankerTraining.load_model = traced(RerankerTraining.load_model, "load", None)
RerankerTraining.release = traced(RerankerTraining.release, None, "release")
RerankerTraining.evaluate = traced(RerankerTraining.evaluate, "evaluate", "evaluated")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
