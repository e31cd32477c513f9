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
# it expects to cost; `DRY_RUN = True` stops there (no key needed, nothing written). Results
# are cached in the output folder (`cache.jsonl` of each step), so a rerun in the same folder
# resumes and pays nothing twice; on Kaggle `/kaggle/working` starts empty in every run.
#
# On Kaggle (`kernel-metadata/paraphrase/`: `python scripts/push_kernel.py paraphrase`) this
# kernel has the internet on, for the API, and no GPU; it attaches the competition and the
# code and wheels datasets. The API key is read from `$OPENAI_API_KEY` (the variable
# `[generate] api_key_env` names) when it is set, else from the Kaggle secret of the same
# name (`API_KEY_SECRET` picks another label) attached to this notebook in the editor.
# `BASE_URL` points the calls at any OpenAI-compatible server instead of OpenAI's API.
#
# **From this output to training data.** The output lands in `OUTPUT_DIR` under
# `/kaggle/working` (the kernel's output; `push_kernel.py` downloads it into
# `build/kernels/paraphrase/output/`), elsewhere under the current folder:
# - `paraphrased/` and `synthesized/` are whole data folders (real rows first, then the
#   generated ones, flagged `Generated`; misconception paraphrases in the mapping):
#   `eedi train --data-dir .../synthesized` learns from all of it.
# - `generated_rows.csv` holds only the generated questions (with `SourceQuestionId`, so rows
#   made from a validation question stay out of training). Name it in the config,
#   `[train] extra_train_files = ["build/kernels/paraphrase/output/generated/generated_rows.csv"]`,
#   and `python scripts/push_datasets.py --only data` ships it as the data dataset
#   (`[kaggle] data_dataset`), which the train kernel attaches and finds the file in by name.
#   Only this file goes there: a whole `train.csv` of the output would add the real training
#   rows a second time. (Misconception paraphrases reach training only through `--data-dir`.)

# %% parameters
CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
OUTPUT_DIR = "generated"  # under /kaggle/working on Kaggle, else the current folder
BASE_URL: str | None = None  # OpenAI-compatible server URL; None: the config's [generate]
MODEL: str | None = None  # model name at the endpoint; None: the config's (gpt-4o-mini)
MAX_COST: float | None = None  # USD cap per step; None: the config's [generate] max_cost
API_KEY_SECRET: str | None = None  # Kaggle secret label; None: [generate] api_key_env's name
DRY_RUN = False  # only print the expected calls, tokens and cost
SYNTHESIZE = True  # also write new questions for misconceptions without training rows
OVERRIDES: dict[str, dict] = {}  # any other setting by section, e.g. {"generate": {"n": 2}}

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

# %% 0b. The openai client of the kit's [llm] extra, on Kaggle from PyPI
# The bootstrap installs the kit without its [llm] extra (openai>=3.51; the tests ran
# requirements.txt's openai==3.51.0), and Kaggle's image has an older openai (2.32.0 in its
# Colab base's pip freeze, eedi_utils/kaggle/image/). This kernel has the internet on (it calls
# the API anyway), so pip takes that exact version, with its dependencies, from PyPI; pinned as
# the bootstrap pins, so Kaggle runs what the tests ran. Elsewhere, install the kit with [llm].
import subprocess
import sys
from importlib import metadata

OPENAI_VERSION = "3.51.0"  # requirements.txt's pin
try:
    installed = metadata.version("openai")
except metadata.PackageNotFoundError:
    installed = None
if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and installed != OPENAI_VERSION:
    print(f"openai {installed or 'missing'}: installing {OPENAI_VERSION} from PyPI")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", f"openai=={OPENAI_VERSION}"],
        capture_output=True,
        text=True,
    )
    print(pip.stdout, pip.stderr)  # into the notebook's log
    pip.check_returncode()

# %% 1. Settings and data
from eedi_utils.config import load_config, with_parameters
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import config_file, output_dir, resolve_data_dir

parameters = with_parameters(
    OVERRIDES, generate={"base_url": BASE_URL, "model": MODEL, "max_cost": MAX_COST}
)
config = load_config(CONFIG_FILE or config_file(), parameters)
source = resolve_data_dir()
print(f"data: {source}")
output = output_dir() / OUTPUT_DIR if not Path(OUTPUT_DIR).is_absolute() else Path(OUTPUT_DIR)
paraphrased, synthesized = output / "paraphrased", output / "synthesized"
endpoint = config.generate.base_url or "OpenAI's API"
print(f"output: {output}; model {config.generate.model} at {endpoint}")

# %% 2. The API key: $OPENAI_API_KEY (as [generate] api_key_env names it), else a Kaggle secret
variable = config.generate.api_key_env
secret = API_KEY_SECRET or variable
if DRY_RUN:
    print("dry run: estimates only, no key needed")
elif os.environ.get(variable):
    print(f"API key: ${variable}")
else:
    why = f"${variable} is not set"
    try:  # Kaggle's image: docker-python's patches/kaggle_secrets.py and kaggle_web_client.py
        from kaggle_secrets import UserSecretsClient, ValidationError
        from kaggle_web_client import BackendError, CredentialError
    except ImportError:  # not on Kaggle: the variable only
        UserSecretsClient = None
    if UserSecretsClient is not None:
        try:
            os.environ[variable] = UserSecretsClient().get_secret(secret)
            print(f"API key: Kaggle secret {secret!r}, set as ${variable}")
        except BackendError as error:  # get_secret: the service has no such secret for us
            why += f" and the Kaggle secret {secret!r} was not found ({error})"
        except CredentialError as error:  # this session has no token to ask for secrets
            why += f" and Kaggle secrets cannot be read here ({error})"
        except ConnectionError as error:  # make_post_request: HTTP errors and network failures
            why += f" and the Kaggle secrets service did not answer ({error})"
        except ValidationError as error:  # an empty label
            why += f" and {secret!r} is no secret label ({error})"
    if not os.environ.get(variable):
        if not config.generate.base_url:
            raise RuntimeError(
                f"no API key: {why}. Add a Kaggle secret labelled {secret!r} to this notebook "
                f"(or set ${variable}), point BASE_URL at a server that needs none, or set "
                "DRY_RUN = True for the estimates only"
            )
        print(f"no API key ({why}): {endpoint} is asked without one")

# %% 3. Paraphrases: estimate, then run (cached in OUTPUT_DIR/paraphrased/cache.jsonl)
from eedi_utils.generate.paraphrase import paraphrase

data = CompetitionData(source.path)
print("paraphrase, expected:", paraphrase(data, paraphrased, config.generate, dry_run=True))
written = None
if not DRY_RUN:
    result = paraphrase(data, paraphrased, config.generate)
    print("paraphrase:", result)
    for failure in result.failures:
        print(f"  failed: {failure}")
    data, written = CompetitionData(paraphrased), paraphrased

# %% 4. Synthetic questions for unseen misconceptions, judged (cached likewise)
from eedi_utils.generate.synthesize import synthesize

if SYNTHESIZE:
    print("synthesize, expected:", synthesize(data, synthesized, config.generate, dry_run=True))
    if not DRY_RUN:
        result = synthesize(data, synthesized, config.generate)
        print("synthesize:", result)
        for failure in result.failures:
            print(f"  failed: {failure}")
        written = synthesized

# %% 5. The generated rows alone, for [train] extra_train_files (see the top of the notebook)
if written is not None:
    from eedi_utils.data import GENERATED_COLUMN

    questions = CompetitionData(written).train_questions()
    rows = questions[questions[GENERATED_COLUMN]]
    rows.to_csv(output / "generated_rows.csv", index=False)
    print(f"wrote {len(rows)} generated questions to {output / 'generated_rows.csv'}")
    print(f"the whole data folder: eedi train --data-dir {written} --output-dir OUT")
