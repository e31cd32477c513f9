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

# %% parameters
CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
MODELS: list[str] | None = None  # retrieval model folders; None: the config's [retrieval] models
RERANK: bool | None = None  # the LLM rerank on or off; None: the config's [rerank] enabled
OVERRIDES: dict[str, dict] = {}  # any other setting by section, e.g. {"retrieval": {"top_k": 50}}
PREVIEW_ROWS = 3  # predictions shown with their question at the end

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

# %% 2. Quick CV on the commit run (skipped in the scoring rerun): the fold the model held out,
#      or every fold for a model that trained on no train row
if not is_competition_rerun() and data.has_train:
    try:
        report = pipeline.evaluate(data, None, config, None, config.evaluate.commit_run_questions)
        print(json.dumps(report, indent=2))
    except pipeline.NothingToScore as err:
        print(f"CV skipped: {err}")

# %% 3. Predict the test set and write the submission
submission_path = pipeline.predict(data, output_dir() / "submission.csv", None, config)
print(f"wrote {submission_path}")

# %% 4. A few predictions: the question, the wrong answer, the top misconceptions
from IPython.display import display

display(pipeline.preview(data, submission_path, PREVIEW_ROWS))
