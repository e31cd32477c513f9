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
# # Eedi misconceptions: LLM paraphrases and synthetic questions
# Enlarges the training data exactly as `eedi paraphrase` and `eedi synthesize` do: N
# paraphrases of every question and misconception, then new questions (kept only if an LLM
# judge accepts them) for misconceptions that no training row has. Each step first prints what
# it expects to cost; results are cached in the output folder, so a rerun resumes and pays
# nothing twice. The key comes from `$OPENAI_API_KEY` (see `.env.example`); `BASE_URL` points
# the calls at any OpenAI-compatible server instead.

# %% parameters
import os

CONFIG_FILE = os.environ.get("EEDI_CONFIG")  # a TOML file; its [generate] section applies
OUTPUT_DIR = os.environ.get("EEDI_OUTPUT_DIR", "generated")
BASE_URL = os.environ.get("EEDI_BASE_URL", "")  # empty: OpenAI's API (or the config's)
MODEL = os.environ.get("EEDI_MODEL", "")  # empty: the config's (gpt-4o-mini by default)
DRY_RUN = bool(os.environ.get("EEDI_DRY_RUN"))  # only print the estimates
SYNTHESIZE = True  # also write new questions for misconceptions without training rows

# %% 1. Settings and data
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData
from eedi_utils.generate.paraphrase import paraphrase
from eedi_utils.generate.synthesize import synthesize
from eedi_utils.inputs import resolve_data_dir

config = load_config(CONFIG_FILE)
config.generate.base_url = BASE_URL or config.generate.base_url
config.generate.model = MODEL or config.generate.model
source = resolve_data_dir()
print(f"data: {source}")
paraphrased, synthesized = Path(OUTPUT_DIR) / "paraphrased", Path(OUTPUT_DIR) / "synthesized"

# %% 2. Paraphrases: estimate, then run (cached in OUTPUT_DIR/paraphrased/cache.jsonl)
data = CompetitionData(source.path)
print("expected:", paraphrase(data, paraphrased, config.generate, dry_run=True))
if not DRY_RUN:
    print("paraphrase:", paraphrase(data, paraphrased, config.generate))
    data = CompetitionData(paraphrased)

# %% 3. Synthetic questions for unseen misconceptions, judged
if SYNTHESIZE:
    print("expected:", synthesize(data, synthesized, config.generate, dry_run=True))
    if not DRY_RUN:
        print("synthesize:", synthesize(data, synthesized, config.generate))
        print(f"train on it: eedi train --data-dir {synthesized} --output-dir OUT")
