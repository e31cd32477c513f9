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
# # Eedi misconceptions: fine-tune a retriever
# Fine-tunes the embedding model on `train.csv` with hard negatives re-mined from the model
# being trained, exactly as `eedi train` does, and leaves a model folder that the inference
# notebook (or `eedi predict --model`) loads offline. Settings come from one TOML config
# (`$EEDI_CONFIG`, else the code dataset's `eedi-kit.toml`); `[train]` holds the training ones.
#
# **Two runs, as in docs/training.md.**
# 1. The CV run (`VAL_FOLD = 0`, the config's default): one fold of `[evaluate]`, grouped by
#    `ConstructId`, is held out and scored before training and after every epoch: MAP@25,
#    recall@25, seen and unseen rows (whether some training row labels the row's
#    misconception), the unseen share and `map@25_lb`, the leaderboard estimate that weights
#    unseen rows as the hidden test is thought to (`[evaluate] lb_unseen_share`). Then the
#    unseen-misconception prior is tuned on that fold: the table below shows each strength of
#    `[train] unseen_prior_grid`, and the best by `map@25_lb` is stored with the model. That
#    table's best row was picked on the rows it scores, so it flatters; the figure to quote is
#    the cross-fitted row (each half of the fold's constructs ranked with the strength picked
#    on the other half). `map@25_lb` is missing (null, None in the table) when the fold has no
#    seen or no unseen rows; then nothing is tuned and `UNSEEN_PRIOR` (else 0) is stored.
# 2. The final run (`VAL_FOLD = -1`, `UNSEEN_PRIOR_FROM = <the CV run's folder>`): the same
#    settings on every row; nothing is held out, so nothing is scored or tuned, and the
#    strength the CV run chose is stored with the ids all rows label (`UNSEEN_PRIOR` sets one
#    by hand). This is the model to submit.
#
# **From this output to the inference kernel.** The model folder (`OUTPUT_DIR`, under
# `/kaggle/working` on Kaggle) holds the weights, `unseen_prior.json`, `metrics.json`,
# `training_curves.png` and `resolved_config.json` (every setting; the inference notebook reads
# from it which fold the model held out). `python scripts/push_kernel.py train` downloads the
# output into `build/kernels/train/output/`; name the folder in the config,
# `[retrieval] models = ["build/kernels/train/output/retriever"]`, and
# `python scripts/push_datasets.py --only model` ships it (checkpoints and negatives left out)
# as the model dataset (`[kaggle] model_dataset`), which the inference kernel attaches and
# finds the folder in by its name.

# %% parameters
import os

CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
OUTPUT_DIR = os.environ.get("EEDI_OUTPUT_DIR", "retriever")  # the model folder to write
RESUME = False  # go on from OUTPUT_DIR's last checkpoint; a non-empty OUTPUT_DIR needs this
OVERWRITE_OUTPUT_DIR = False  # or this: clear OUTPUT_DIR's earlier run and train afresh
BASE_MODEL: str | None = None  # model folder to start from; None: the config's [train] base_model
EPOCHS: int | None = None  # passes over the training rows; None: the config's [train] epochs
VAL_FOLD: int | None = None  # fold held out for validation; -1: train on every row (to submit)
UNSEEN_PRIOR_FROM: str | None = None  # VAL_FOLD = -1: the CV run whose tuned strength to store
UNSEEN_PRIOR: float | None = None  # or this strength by hand; neither: the config's, else 0
OVERRIDES: dict[str, dict] = {}  # any other setting by section, e.g. {"train": {"lora_r": 16}}

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

from eedi_utils.config import load_config, with_parameters
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import config_file, output_dir, resolve_data_dir
from eedi_utils.train.retriever.run import RetrieverTraining

parameters = with_parameters(
    OVERRIDES,
    train={
        "base_model": BASE_MODEL,
        "epochs": EPOCHS,
        "val_fold": VAL_FOLD,
        "unseen_prior_from": UNSEEN_PRIOR_FROM,
    },
    retrieval={"unseen_prior": UNSEEN_PRIOR},
)
config = load_config(CONFIG_FILE or config_file(), parameters)
source = resolve_data_dir()
print(f"data: {source}")
output = output_dir() / OUTPUT_DIR if not Path(OUTPUT_DIR).is_absolute() else Path(OUTPUT_DIR)

# %% 2. Train: evaluate, mine, train one epoch, re-mine, ... then save
training = RetrieverTraining(CompetitionData(source.path), output, config)
model = training.run(resume=RESUME, overwrite=OVERWRITE_OUTPUT_DIR)
print(f"model saved in {output}; seconds: {training.seconds}")

# %% 3. Validation per epoch (epoch 0 = before training; the last scores the saved model as
# predict loads it): the figures, then the curves
from IPython.display import Image, display

from eedi_utils.metrics import lb_key, map_key, recall_key
from eedi_utils.train.retriever.report import CURVES_FILE
from eedi_utils.train.retriever.run import SCORED_IN_TRAINING

k = config.retrieval.top_k
key, estimate = map_key(k), lb_key(k)
for entry in training.history:
    row = {"epoch": entry["epoch"], key: entry[key], recall_key(k): entry[recall_key(k)]}
    row |= {"seen": entry["seen"][key], "unseen": entry["unseen"][key]}
    row |= {"unseen_share": entry["unseen_share"], estimate: entry[estimate]}
    print(json.dumps(row | {"scored": entry.get("scored", SCORED_IN_TRAINING)}))  # older runs
if training.history:
    display(Image(filename=str(output / CURVES_FILE)))
else:
    print("no validation rows (VAL_FOLD = -1): nothing scored")

# %% 4. The unseen prior: the table it was tuned on, the strength stored, the next step
import pandas as pd

from eedi_utils.prior import PRIOR_FILE, read_prior
from eedi_utils.provenance import RESOLVED_CONFIG

tuning = training.prior_tuning
if tuning:  # one row per strength of [train] unseen_prior_grid, then the figure to report
    print(pd.DataFrame(tuning.table).to_string(index=False))
    print(f"cross-fitted (the figure to report): {tuning.cross_fitted}")
    for note in tuning.notes:
        print(f"warning: {note}")
prior = read_prior(output)
print(
    f"stored in {output / PRIOR_FILE}: unseen prior {prior.strength} ({training.prior_source}), "
    f"{len(prior.labelled_ids)} misconceptions labelled by the training rows"
)
print(f"every setting of this run: {output / RESOLVED_CONFIG}")
if config.train.val_fold >= 0:
    print(
        f"next, the final run: VAL_FOLD = -1, UNSEEN_PRIOR_FROM = {str(output)!r} and a new "
        "OUTPUT_DIR, nothing else (where this folder is gone, as in a new Kaggle session: "
        f"UNSEEN_PRIOR = {prior.strength})"
    )
else:
    print(
        f"the model to submit: [retrieval] models = [its folder] ({output} here, "
        f"build/kernels/train/output/{output.name} once push_kernel.py downloaded it), "
        "then scripts/push_datasets.py --only model"
    )
