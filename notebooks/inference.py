# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Eedi misconceptions: inference
# Ranks the 25 most likely misconceptions for every wrong answer of `test.csv` and writes a
# validated `submission.csv`, exactly as `eedi predict` does.
#
# Inputs, first found wins: `$EEDI_DATA_DIR`, the Kaggle competition input, the sample bundled
# with the package. On Kaggle's commit run (not the scoring rerun) it first scores a seeded
# sample of train questions from the fold the shipped model held out (folds grouped by
# `[evaluate] group_by`, `ConstructId` by default, as the model's `resolved_config.json` says)
# and prints MAP@25, seen, unseen, the unseen share and `map@25_lb`; a model trained on every
# row (`val_fold = -1`) has no such fold, and the notebook says so.
#
# On the commit run it also prints, before ranking, a runtime estimate for the hidden test
# (each model's start and texts/second measured on one batch, times the hidden test's size), and
# at the end the run time from the first cell beside the CV, with the efficiency-track score
# estimate on a CPU-only session (`eedi_utils.efficiency`; the same notebook is the CPU kernel,
# `kernel-metadata/inference-cpu`).

# %% parameters
import time

STARTED = time.perf_counter()  # the run time printed at the end counts from this first cell
CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
MODELS: list[str] | None = None  # retrieval model folders; None: the config's [retrieval] models
RERANK: bool | None = None  # the LLM rerank on or off; None: the config's [rerank] enabled
OVERRIDES: dict[str, dict] = {}  # any other setting by section, e.g. {"retrieval": {"top_k": 50}}
PREVIEW_ROWS = 3  # predictions shown with their question at the end
HIDDEN_TEST_QUESTIONS: int | None = None  # None: efficiency.HIDDEN_TEST_QUESTIONS (about 1000)

# %% 0. Offline set-up on Kaggle: install the kit and its pinned wheels from the attached inputs
import os
import runpy
from pathlib import Path

inputs = Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input")
bootstraps = sorted(
    p for d in ("*", "*/*", "*/*/*") for p in inputs.glob(f"{d}/kaggle_bootstrap.py")
)
if bootstraps:  # the code dataset's notebooks/kaggle_bootstrap.py
    runpy.run_path(str(bootstraps[0]), run_name="__main__")
elif os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    raise RuntimeError(f"no kaggle_bootstrap.py under {inputs}: attach the code dataset")

# %% 1. Settings and data
import json

from eedi_utils import pipeline
from eedi_utils.config import load_config, with_parameters
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import (
    config_file,
    is_competition_rerun,
    output_dir,
    resolve_data_dir,
)

parameters = with_parameters(OVERRIDES, retrieval={"models": MODELS}, rerank={"enabled": RERANK})
config = load_config(CONFIG_FILE or config_file(), parameters)
source = resolve_data_dir()
print(f"data: {source}")
data = CompetitionData(source.path)

# %% 2. Runtime estimate for the hidden test, on the commit run: each model's start and
#      texts/second on one batch of train queries and of misconceptions
from eedi_utils import efficiency
from eedi_utils.text import misconception_texts, query_texts

hidden = None
commit_only_seconds = 0.0  # what the scoring rerun skips: this estimate and the CV
if not is_competition_rerun():
    step = time.perf_counter()
    rates = efficiency.measure_encoding(
        pipeline.model_paths(None, config),
        query_texts(data.train() if data.has_train else data.test(), config.text),
        misconception_texts(data.misconceptions, config.text),
        config.retrieval,
    )
    hidden = efficiency.RuntimeEstimate(
        step - STARTED,
        tuple(rates),
        HIDDEN_TEST_QUESTIONS or efficiency.HIDDEN_TEST_QUESTIONS,
        len(data.misconceptions),
    )
    commit_only_seconds += time.perf_counter() - step
    print(f"hidden-test runtime estimate: {hidden}")
    if config.rerank.enabled:
        print("  (retrieval only: the LLM stage [rerank] comes on top)")

# %% 3. Quick CV on the commit run (skipped in the scoring rerun): the fold the model held out,
#      or every fold for a model that trained on no train row
report = None
if not is_competition_rerun() and data.has_train:
    step = time.perf_counter()
    try:
        report = pipeline.evaluate(data, None, config, None, config.evaluate.commit_run_questions)
        print(json.dumps(report, indent=2))
    except pipeline.NothingToScore as err:
        print(f"CV skipped: {err}")
    commit_only_seconds += time.perf_counter() - step

# %% 4. Predict the test set and write the submission
submission_path = pipeline.predict(data, output_dir() / "submission.csv", None, config)
print(f"wrote {submission_path}")

# %% 5. Run time, and the efficiency-track score estimate beside the commit run's CV
run_seconds = time.perf_counter() - STARTED
cpu_only = not efficiency.has_gpu()
rerun_seconds = run_seconds - commit_only_seconds
top_k = config.retrieval.top_k
print(efficiency.summary(report, run_seconds, rerun_seconds, hidden, cpu_only, top_k))

# %% 6. A few predictions: the question, the wrong answer, the top misconceptions
from IPython.display import display

display(pipeline.preview(data, submission_path, PREVIEW_ROWS))
