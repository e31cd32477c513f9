"""The notebooks run as scripts and as notebooks: inference writes a valid submission, train
leaves a model, paraphrase takes its key from a Kaggle secret or the variable."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jupytext
import pandas as pd
import pytest
from llm_server import FakeLLM
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import COMPETITION
from eedi_utils.submission import read_submission, validate_submission
from eedi_utils.train.retriever.data import prepare_data

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "inference.py"


def assert_valid_submission(path: Path, data_dir: Path) -> None:
    data = CompetitionData(data_dir)
    ids = set(data.misconceptions["MisconceptionId"])
    validate_submission(read_submission(path), data.test(), ids)


def execute(notebook, folder: Path) -> str:
    """Run every cell with nbclient in `folder`; return the printed text of all cells and
    the MIME types of what they displayed (one "<mime>" per line)."""
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    shown = "".join(f"<{mime}>\n" for o in outputs for mime in o.get("data", {}))
    return printed + shown


@pytest.fixture()
def tiny_config(tmp_path, tiny_model) -> Path:
    path = tmp_path / "kit.toml"
    path.write_text(
        f'[retrieval]\nmodels = ["{tiny_model}"]\nshow_progress = false\n[evaluate]\nfolds = 3\n'
    )
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EEDI_DATA_DIR", "EEDI_CONFIG", "KAGGLE_IS_COMPETITION_RERUN")
    }
    return {**env, **extra}


@pytest.mark.slow
def test_script_runs_the_main_job_on_the_bundled_sample(tmp_path, sample) -> None:
    result = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(bundled sample)" in result.stdout
    assert '"map@25"' in result.stdout  # the commit-run CV report
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_rerun_mode_skips_cv(tmp_path, sample, tiny_config) -> None:
    env = clean_env(
        EEDI_CONFIG=str(tiny_config), EEDI_DATA_DIR=str(sample), KAGGLE_IS_COMPETITION_RERUN="1"
    )
    result = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "map@25" not in result.stdout and "($EEDI_DATA_DIR)" in result.stdout
    assert "runtime estimate" not in result.stdout  # nobody reads the rerun's log: no time spent
    assert "efficiency score: no CV on this run" in result.stdout
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_executes_as_a_notebook(tmp_path, sample, tiny_config, monkeypatch) -> None:
    notebook = jupytext.read(NOTEBOOK)
    assert [c.cell_type for c in notebook.cells].count("code") == 8
    monkeypatch.setenv("EEDI_CONFIG", str(tiny_config))
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    outputs = execute(notebook, tmp_path)
    assert "data: " in outputs and "wrote " in outputs and '"unseen"' in outputs
    assert "<text/html>" in outputs  # the preview table of a few predictions
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_on_a_cpu_it_estimates_the_hidden_test_then_prints_its_time_and_efficiency_score(
    tmp_path, sample, tiny_model, tiny_config
) -> None:
    """The CPU kernel's run (kernel-metadata/inference-cpu builds this notebook), here on this
    machine's CPU: the estimate before ranking, then the run time from the first cell and the
    efficiency score from the commit run's map@25_lb (eedi_utils.efficiency)."""
    env = clean_env(
        EEDI_CONFIG=str(tiny_config), EEDI_DATA_DIR=str(sample), CUDA_VISIBLE_DEVICES=""
    )
    notebook = jupytext.read(NOTEBOOK)
    cell = next(c for c in notebook.cells if c.metadata.get("title") == "parameters")
    cell.source += "\nHIDDEN_TEST_QUESTIONS = 500"
    script = tmp_path / "inference.py"
    jupytext.write(notebook, script, fmt="py:percent")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    estimate = re.search(
        r"^hidden-test runtime estimate: (\d+) s \(.* min\) for 500 questions \(1500 rows\) "
        r"and (\d+) misconceptions: (\d+) s so far \+ encoding \((\S+): start ",
        out, re.M,
    )  # fmt: skip
    assert estimate, out
    assert int(estimate[2]) == len(CompetitionData(sample).misconceptions)
    assert estimate[4] == tiny_model.name  # the config's model, loaded and timed
    assert out.index("hidden-test runtime estimate") < out.index('"map@25_lb"') < out.index("wrote")
    report, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])  # the CV report
    run = re.search(
        r"^run time: ([\d.]+) s from the first cell \(([\d.]+) s of it would run", out, re.M
    )
    assert run and 0 < float(run[2]) < float(run[1])  # the estimate and the CV are commit-only
    cv = re.search(r"^commit-run CV: map@25 ([\d.]+) .* map@25_lb ([\d.]+)$", out, re.M)
    assert cv and float(cv[2]) == pytest.approx(report["map@25_lb"], abs=5e-5)
    score = re.search(
        r"^efficiency score estimate: (-?[\d.]+) \(lower is better\) = map@25_lb [\d.]+ / "
        r"\(0.0 - 0.638\) \+ (\d+) s \(hidden-test estimate\) / 32400$",
        out, re.M,
    )  # fmt: skip
    assert score and score[2] == estimate[1], out
    expected = report["map@25_lb"] / -0.638 + int(estimate[1]) / 32400
    assert float(score[1]) == pytest.approx(expected, abs=2e-4)  # printed rounded
    assert_valid_submission(tmp_path / "submission.csv", sample)


def test_train_notebook_runs_end_to_end(tmp_path, sample, tiny_model, monkeypatch) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(
        "[retrieval]\nshow_progress = false\n[evaluate]\nfolds = 3\n"
        f'[train]\nbase_model = "{tiny_model}"\nepochs = 1\nbatch_size = 8\nn_negatives = 1\n'
        'mixed_precision = "no"\n'
    )
    notebook = jupytext.read(NOTEBOOKS / "train.py")
    monkeypatch.setenv("EEDI_CONFIG", str(config))
    monkeypatch.setenv("EEDI_OUTPUT_DIR", str(tmp_path / "model"))
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)
    outputs = execute(notebook, tmp_path)
    assert "(bundled sample)" in outputs and '"epoch": 1' in outputs
    assert (tmp_path / "model" / "modules.json").exists()
    assert (tmp_path / "model" / "training_curves.png").exists()
    assert "<image/png>" in outputs  # the curves, shown inline
    epochs = [json.loads(line) for line in outputs.splitlines() if line.startswith('{"epoch"')]
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert {"seen", "unseen", "unseen_share", "map@25_lb"} <= set(epochs[-1])
    # the prior table, one row per strength of the grid, and the strength it chose
    stored = json.loads((tmp_path / "model" / "unseen_prior.json").read_text())
    assert len(stored["tuning"]) == len(KitConfig().train.unseen_prior_grid)
    header = next(line for line in outputs.splitlines() if line.lstrip().startswith("unseen_prior"))
    assert header.split() == [
        "unseen_prior",
        "map@25",
        "seen",
        "unseen",
        "unseen_share",
        "map@25_lb",
    ]
    assert "cross-fitted (the figure to report): {'unseen_prior': 'cross-fitted [" in outputs
    assert f"unseen prior {stored['strength']} (tuned on fold 0" in outputs
    model = str(tmp_path / "model")
    assert f"next, the final run: VAL_FOLD = -1, UNSEEN_PRIOR_FROM = {model!r}" in outputs
    assert "resolved_config.json" in outputs


def untrained_train_notebook(tmp_path: Path, tiny_model: Path, out: Path, train: str = ""):
    """notebooks/train.py with a config of no training step on `tiny_model` (plus `train`
    lines in [train]) writing to `out`; returns the notebook and its parameters cell."""
    config = tmp_path / "kit.toml"
    config.write_text(
        "[retrieval]\nshow_progress = false\n"
        f'[train]\nbase_model = "{tiny_model}"\nepochs = 0\nbatch_size = 8\nn_negatives = 0\n'
        f'mixed_precision = "no"\n{train}'
    )
    notebook = jupytext.read(NOTEBOOKS / "train.py")
    cell = next(c for c in notebook.cells if c.metadata.get("title") == "parameters")
    cell.source += f"\nCONFIG_FILE = {str(config)!r}\nOUTPUT_DIR = {str(out)!r}"
    return notebook, cell


def test_train_notebook_final_run_stores_the_given_prior(tmp_path, tiny_model, monkeypatch) -> None:
    """The second step: every row, nothing scored or tuned, the CV's strength stored."""
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)  # the bundled sample
    notebook, cell = untrained_train_notebook(tmp_path, tiny_model, tmp_path / "final")
    cell.source += "\nVAL_FOLD = -1\nUNSEEN_PRIOR = 0.06"
    outputs = execute(notebook, tmp_path)
    assert "no validation rows (VAL_FOLD = -1): nothing scored" in outputs
    stored = json.loads((tmp_path / "final" / "unseen_prior.json").read_text())
    assert stored["strength"] == 0.06 and stored["tuning"] == []
    assert "unseen prior 0.06 ([retrieval] unseen_prior)," in outputs
    assert "the model to submit" in outputs


def test_train_notebook_refuses_an_earlier_run_unless_told_to_overwrite(
    tmp_path, tiny_model, monkeypatch
) -> None:
    """As `eedi train`: OUTPUT_DIR holding an earlier run stops the notebook with a message
    naming RESUME and OVERWRITE_OUTPUT_DIR; OVERWRITE_OUTPUT_DIR = True clears it first."""
    monkeypatch.delenv("EEDI_DATA_DIR", raising=False)  # the bundled sample
    out = tmp_path / "retriever"
    (out / "checkpoints" / "checkpoint-99").mkdir(parents=True)  # an earlier run's state
    (out / "negatives").mkdir()
    (out / "negatives" / "round-0.npy").write_bytes(b"stale")
    notebook, cell = untrained_train_notebook(tmp_path, tiny_model, out, "val_fold = -1\n")
    with pytest.raises(CellExecutionError, match="OutputDirNotEmpty") as raised:
        execute(copy.deepcopy(notebook), tmp_path)
    assert "RESUME or OVERWRITE_OUTPUT_DIR" in str(raised.value)
    assert (out / "checkpoints" / "checkpoint-99").is_dir()  # nothing touched

    cell.source += "\nOVERWRITE_OUTPUT_DIR = True"
    outputs = execute(notebook, tmp_path)
    assert f"model saved in {out}" in outputs
    assert not (out / "checkpoints").exists() and not (out / "negatives").exists()
    assert (out / "modules.json").exists()


# --- notebooks/paraphrase.py: the key from Kaggle secrets or the variable, DRY_RUN ----------

WEB_CLIENT = '''"""Stand-in for Kaggle's kaggle_web_client (docker-python,
patches/kaggle_web_client.py): the same exceptions and constructor check; the secrets service
is $STAND_IN_SECRETS (JSON)."""
import json
import os


class CredentialError(Exception):
    pass


class BackendError(Exception):
    pass


class KaggleWebClient:
    def __init__(self):
        self.jwt_token = os.getenv("KAGGLE_USER_SECRETS_TOKEN")
        if self.jwt_token is None:
            raise CredentialError(
                "A JWT Token is required to call Kaggle, "
                "but none found in environment variable KAGGLE_USER_SECRETS_TOKEN"
            )

    def make_post_request(self, data, endpoint, timeout=40):
        secrets = json.loads(os.environ.get("STAND_IN_SECRETS", "{}"))
        if secrets == "unreachable":  # HTTPError is a URLError: caught first, for any status
            raise ConnectionError("Connection error trying to communicate with service.")
        if data.get("Label") not in secrets:  # what the service answers for a missing one
            response = {"wasSuccessful": False, "errors": ["No user secrets exist for kernel"]}
            raise BackendError(f"Unexpected response from the service. Response: {response}.")
        return {"secret": secrets[data["Label"]], "secretType": "unspecified"}
'''

SECRETS = '''"""Stand-in for Kaggle's kaggle_secrets (docker-python, patches/kaggle_secrets.py)."""
from kaggle_web_client import BackendError, CredentialError, KaggleWebClient


class ValidationError(Exception):
    pass


class UserSecretsClient:
    GET_USER_SECRET_BY_LABEL_ENDPOINT = "/requests/GetUserSecretByLabelRequest"

    def __init__(self):
        self.web_client = KaggleWebClient()

    def get_secret(self, label) -> str:
        if label is None or len(label) == 0:
            raise ValidationError("Label must be non-empty.")
        response_json = self.web_client.make_post_request(
            {"Label": label}, self.GET_USER_SECRET_BY_LABEL_ENDPOINT
        )
        if "secret" not in response_json:
            raise BackendError(f"Unexpected response from the service. Response: {response_json}")
        return response_json["secret"]
'''

KEY = "EEDI_TEST_KEY"  # [generate] api_key_env of these tests


@pytest.fixture()
def kaggle_like(tmp_path, sample, monkeypatch) -> Path:
    """A Kaggle-like root with working/ (the output), the sample as the data, no key set."""
    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    monkeypatch.setenv("EEDI_KAGGLE_ROOT", str(root))
    monkeypatch.setenv("EEDI_DATA_DIR", str(sample))
    for name in (KEY, "OPENAI_API_KEY", "KAGGLE_USER_SECRETS_TOKEN", "STAND_IN_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    return root


def kaggle_secrets_on_path(folder: Path, monkeypatch, secrets: dict[str, str] | None) -> None:
    """Kaggle's secrets modules importable by the notebook's kernel; `secrets` None: no token
    (the client cannot ask), else the secrets the service knows."""
    folder.mkdir()
    (folder / "kaggle_web_client.py").write_text(WEB_CLIENT)
    (folder / "kaggle_secrets.py").write_text(SECRETS)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    if secrets is not None:
        monkeypatch.setenv("KAGGLE_USER_SECRETS_TOKEN", "test-jwt")
        monkeypatch.setenv("STAND_IN_SECRETS", json.dumps(secrets))


def use_generate_config(folder: Path, monkeypatch, base_url: str = "") -> None:
    """$EEDI_CONFIG: a [generate] section for `base_url` (empty: OpenAI's API)."""
    path = folder / "kit.toml"
    path.write_text(
        f'[generate]\nmodel = "test-model"\nbase_url = "{base_url}"\napi_key_env = "{KEY}"\n'
        "n = 2\nper_misconception = 1\nconcurrency = 8\ntimeout = 5.0\n"
    )
    monkeypatch.setenv("EEDI_CONFIG", str(path))


def paraphrase_notebook(**parameters):
    """notebooks/paraphrase.py with these values set at the end of its parameters cell."""
    notebook = jupytext.read(NOTEBOOKS / "paraphrase.py")
    cell = next(c for c in notebook.cells if c.metadata.get("title") == "parameters")
    cell.source += "".join(f"\n{name} = {value!r}" for name, value in parameters.items())
    return notebook


@contextlib.contextmanager
def recording_server():
    """The fake OpenAI-compatible server, recording each call's Authorization header."""
    with FakeLLM() as fake:
        fake.authorizations = []
        served = fake.server.RequestHandlerClass

        class Recording(served):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                fake.authorizations.append(self.headers.get("Authorization"))
                super().do_POST()

        fake.server.RequestHandlerClass = Recording
        yield fake


def test_paraphrase_notebook_takes_the_key_from_a_kaggle_secret(
    tmp_path, sample, kaggle_like, monkeypatch
) -> None:
    kaggle_secrets_on_path(tmp_path / "site", monkeypatch, {KEY: "sk-from-secret"})
    with recording_server() as fake:
        use_generate_config(tmp_path, monkeypatch, fake.base_url)
        outputs = execute(paraphrase_notebook(), tmp_path)
    assert f"API key: Kaggle secret '{KEY}', set as ${KEY}" in outputs
    assert fake.authorizations and set(fake.authorizations) == {"Bearer sk-from-secret"}
    assert "sk-from-secret" not in outputs  # never printed
    generated = kaggle_like / "working" / "generated"  # under /kaggle/working on Kaggle
    assert (generated / "paraphrased" / "train.csv").is_file()
    assert (generated / "synthesized" / "train.csv").is_file()

    # generated_rows.csv joins training as [train] extra_train_files without repeating real rows
    rows = pd.read_csv(generated / "generated_rows.csv", dtype=str, keep_default_na=False)
    assert len(rows) and set(rows["Generated"]) == {"True"} and "SourceQuestionId" in rows
    assert (rows["SourceQuestionId"] == "").any()  # synthesized: made from no question
    config = KitConfig()
    config.evaluate.folds = 3
    base = prepare_data(CompetitionData(sample), config)
    config.train.extra_train_files = [str(generated / "generated_rows.csv")]
    joined = prepare_data(CompetitionData(sample), config)
    assert len(joined.queries) > len(base.queries)
    counts = Counter(joined.queries)
    assert all(counts[q] == n for q, n in Counter(base.queries).items())


def test_paraphrase_notebook_outside_kaggle_reads_the_variable(
    tmp_path, kaggle_like, monkeypatch
) -> None:
    monkeypatch.setenv(KEY, "sk-from-env")  # and no kaggle_secrets module to import
    with recording_server() as fake:
        use_generate_config(tmp_path, monkeypatch, fake.base_url)
        outputs = execute(paraphrase_notebook(SYNTHESIZE=False), tmp_path)
    assert f"API key: ${KEY}" in outputs
    assert fake.authorizations and set(fake.authorizations) == {"Bearer sk-from-env"}
    assert (kaggle_like / "working" / "generated" / "generated_rows.csv").is_file()


@pytest.mark.parametrize(
    ("secrets", "why"),
    [
        ({"OTHER": "x"}, f"the Kaggle secret '{KEY}' was not found"),  # BackendError
        (None, "Kaggle secrets cannot be read here"),  # no token: CredentialError
        ("unreachable", "the Kaggle secrets service did not answer"),  # ConnectionError
        ("no module", f"${KEY} is not set. Add"),  # not on Kaggle
    ],
    ids=["secret-missing", "no-secrets-token", "service-unreachable", "not-on-kaggle"],
)
def test_paraphrase_notebook_without_a_key_stops_naming_the_secret_and_variable(
    tmp_path, kaggle_like, monkeypatch, secrets, why
) -> None:
    if secrets != "no module":
        kaggle_secrets_on_path(tmp_path / "site", monkeypatch, secrets)
    with recording_server() as fake:
        use_generate_config(tmp_path, monkeypatch)  # OpenAI's API: a key is needed
        with pytest.raises(CellExecutionError) as stopped:
            execute(paraphrase_notebook(), tmp_path)
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(stopped.value))  # the traceback's colours
    assert "RuntimeError: no API key" in message and why in message
    assert f"Add a Kaggle secret labelled '{KEY}'" in message and f"(or set ${KEY})" in message
    assert "DRY_RUN = True" in message
    assert not fake.authorizations and not (kaggle_like / "working" / "generated").exists()


def test_paraphrase_notebook_dry_run_only_prints_the_estimates(
    tmp_path, sample, kaggle_like, monkeypatch
) -> None:
    """Inside a Kaggle-like kernel: the competition input, a bootstrap that has nothing to
    install, openai already at the pinned version (so no pip), no key anywhere."""
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.delenv("EEDI_DATA_DIR")
    shutil.copytree(sample, kaggle_like / "input" / "competitions" / COMPETITION)
    (kaggle_like / "input" / "eedi-kit-code").mkdir()
    (kaggle_like / "input" / "eedi-kit-code" / "kaggle_bootstrap.py").write_text("print('boot')")
    kaggle_secrets_on_path(tmp_path / "site", monkeypatch, None)
    with recording_server() as fake:
        use_generate_config(tmp_path, monkeypatch)
        outputs = execute(paraphrase_notebook(DRY_RUN=True), tmp_path)
    assert "boot" in outputs and "(Kaggle competition input)" in outputs
    assert "installing" not in outputs  # openai is at requirements.txt's version here
    assert "dry run: estimates only, no key needed" in outputs
    assert re.search(r"paraphrase, expected: \d+ calls", outputs)
    assert re.search(r"synthesize, expected: \d+ calls", outputs)
    assert "paraphrase: done" not in outputs and "wrote " not in outputs
    assert not fake.authorizations and not fake.requests
    assert not any((kaggle_like / "working").rglob("*.csv"))
