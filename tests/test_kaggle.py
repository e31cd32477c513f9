"""Kaggle mechanics: kernel metadata rules, built notebooks, credentials, and the scripts run
against a stand-in `kaggle` executable first on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from eedi_utils.config import KitConfig, config_from_dict
from eedi_utils.inputs import COMPETITION
from eedi_utils.kaggle.datasets import download_command, pinned
from eedi_utils.kaggle.kernels import (
    METADATA_FILE,
    WHEELS_KERNEL,
    build_notebook,
    metadata_problems,
    render_metadata,
    slugify,
)

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((PROJECT / "kernel-metadata").glob("*/kernel-metadata.json"))
FULL = config_from_dict(
    {"retrieval": {"models": ["runs/minilm-ft"]}, "train": {"extra_train_files": ["x.csv"]}}
)


def test_there_is_a_kernel_per_notebook_that_runs_on_kaggle() -> None:
    assert {t.parent.name for t in TEMPLATES} == {
        "inference",
        "inference-cpu",
        "train",
        "wheels",
        "paraphrase",
    }


OFFLINE_TEMPLATES = [t for t in TEMPLATES if t.parent.name in ("inference", "train")]


@pytest.mark.parametrize("template", OFFLINE_TEMPLATES, ids=lambda t: t.parent.name)
def test_committed_metadata_follow_the_rules(template: Path, tmp_path: Path) -> None:
    raw = json.loads(template.read_text())
    assert raw["enable_internet"] is False  # written out: the CLI would default it to true
    meta = render_metadata(template, "alice", FULL)
    (tmp_path / meta["code_file"]).write_text("{}")
    assert metadata_problems(meta, tmp_path) == []
    assert meta["id"] == f"alice/{slugify(meta['title'])}" and len(meta["title"]) >= 5
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True
    assert meta["competition_sources"] == [COMPETITION]
    assert all(s.startswith("alice/eedi-kit-") for s in meta["dataset_sources"])
    assert (PROJECT / "notebooks" / meta["code_file"]).with_suffix(".py").is_file()


def test_the_wheels_kernel_is_online_and_the_others_attach_its_output_when_asked() -> None:
    wheels = render_metadata(PROJECT / "kernel-metadata" / "wheels" / METADATA_FILE, "al", FULL)
    assert wheels["enable_internet"] is True and wheels["machine_shape"] == "NvidiaTeslaT4"
    assert metadata_problems(wheels) == []
    assert wheels["id"] == f"al/{WHEELS_KERNEL}" == f"al/{slugify(wheels['title'])}"
    inference = PROJECT / "kernel-metadata" / "inference" / METADATA_FILE
    assert render_metadata(inference, "al", FULL)["kernel_sources"] == []
    attached = config_from_dict({"kaggle": {"attach_vllm_wheels": True}})
    assert render_metadata(inference, "al", attached)["kernel_sources"] == [f"al/{WHEELS_KERNEL}"]
    online = {**render_metadata(inference, "al", attached), "enable_internet": True}
    assert any("enable_internet" in p for p in metadata_problems(online))


def test_unused_datasets_are_left_out_of_the_sources() -> None:
    template = PROJECT / "kernel-metadata" / "inference" / "kernel-metadata.json"
    with_model = render_metadata(template, "bob", FULL)["dataset_sources"]
    zero_shot = render_metadata(template, "bob", KitConfig())["dataset_sources"]
    assert with_model == ["bob/eedi-kit-code", "bob/eedi-kit-wheels", "bob/eedi-kit-model"]
    assert zero_shot == ["bob/eedi-kit-code", "bob/eedi-kit-wheels"]
    with_llm = KitConfig()
    with_llm.kaggle.extra_dataset_sources = ["carol/qwen25-14b-awq"]
    with_llm.kaggle.model_sources = ["qwen-lm/qwen2.5/transformers/14b-instruct-awq/1"]
    meta = render_metadata(template, "bob", with_llm)
    assert meta["dataset_sources"][-1] == "carol/qwen25-14b-awq"
    assert meta["model_sources"] == with_llm.kaggle.model_sources
    assert metadata_problems(meta) == []


def test_each_broken_rule_is_reported(tmp_path: Path) -> None:
    good = render_metadata(TEMPLATES[0], "alice", FULL)
    breaks = {
        "machine_shape": ("NvidiaTeslaP100", "machine_shape"),
        "enable_internet": (True, "enable_internet"),
        "title": ("inf", "at least 5"),
        "id": ("alice/other-name", "title's slug"),
        "kernel_type": ("script", "kernel_type"),
        "competition_sources": ([], "competition_sources"),
        "dataset_sources": (["alice/short"], "6-50"),
        "code_file": ("inference.py", "built .ipynb"),
    }
    for key, (value, message) in breaks.items():
        problems = metadata_problems({**good, key: value})
        assert any(message in p for p in problems), (key, problems)
    missing = {k: v for k, v in good.items() if k != "enable_internet"}
    assert any("enable_internet" in p for p in metadata_problems(missing))
    # version-pinned sources are valid (kaggle CLI, kaggle_api_extended.validate_dataset_string;
    # docs/kaggle-cli.md, item 8)
    pinned = {**good, "dataset_sources": ["alice/eedi-kit-model/3", "alice/eedi-kit-wheels"]}
    assert metadata_problems(pinned) == []
    assert any("not in" in p for p in metadata_problems(good, tmp_path))


def test_slug_matches_kaggle_rules() -> None:
    assert slugify("eedi-kit inference") == "eedi-kit-inference"
    assert slugify("  Eedi: Kit  v2!") == "eedi-kit-v2"


@pytest.mark.parametrize("name", ["inference", "train", "paraphrase"])
def test_built_notebook_is_valid_and_holds_exactly_the_py_code(name: str, tmp_path: Path) -> None:
    source = PROJECT / "notebooks" / f"{name}.py"
    built = nbformat.read(build_notebook(source, tmp_path / f"{name}.ipynb"), as_version=4)
    nbformat.validate(built)
    code = [c.source for c in built.cells if c.cell_type == "code"]
    assert code == [c.source for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in built.cells
        if c.cell_type == "code"
    )
    assert not any(line.lstrip().startswith(("!", "%")) for c in code for line in c.splitlines())
    assert "kaggle_bootstrap.py" in code[1] and "runpy.run_path" in code[1]  # offline set-up


def test_wheel_pins_follow_this_environment() -> None:
    import numpy

    assert pinned(["numpy", "vllm==0.9.1"]) == [f"numpy=={numpy.__version__}", "vllm==0.9.1"]
    with pytest.raises(ValueError, match="not installed here"):
        pinned(["surely-not-a-package-xyz"])


def test_wheels_are_downloaded_for_kaggles_platform_without_their_dependencies(tmp_path) -> None:
    """Dependencies are walked by resolve_wheel_set over the declared image (test_wheel_set)."""
    command = download_command(tmp_path, ["a==1"], "3.12", ["manylinux_2_28_x86_64"])
    assert {"--only-binary=:all:", "--no-deps"} <= set(command)
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--platform") + 1] == "manylinux_2_28_x86_64"


# --- the scripts, against the stand-in kaggle -------------------------------------------


@pytest.fixture()
def fake_kaggle(tmp_path: Path) -> Path:
    """A `kaggle` executable first on PATH; returns its state folder."""
    bin_dir, state = tmp_path / "bin", tmp_path / "kaggle-state"
    bin_dir.mkdir()
    state.mkdir()
    script = bin_dir / "kaggle"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{PROJECT / "tests" / "fake_kaggle.py"}" "$@"\n'
    )
    script.chmod(0o755)
    return state


def run_script(name: str, args: list[str], tmp_path: Path, **env: str):
    """Run scripts/NAME with the stand-in kaggle first on PATH and an empty home."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k != "HOME"}
    environ.update(
        PATH=f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        HOME=str(tmp_path / "home"),
        FAKE_KAGGLE_DIR=str(tmp_path / "kaggle-state"),
        **env,
    )
    script = PROJECT / "scripts" / name
    command = ["bash", str(script)] if name.endswith(".sh") else [sys.executable, str(script)]
    return subprocess.run(
        [*command, *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def calls(state: Path) -> list[dict]:
    log = state / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


CREDENTIALS = {"KAGGLE_USERNAME": "alice", "KAGGLE_KEY": "secret"}
"""The legacy pair; every form the real CLI accepts is tried in test_each_credential_form."""


def test_scripts_without_credentials_relay_what_the_cli_says(tmp_path, fake_kaggle) -> None:
    """The CLI prints its authentication help and exits 1 (docs/kaggle-cli.md §7)."""
    for script, args in [
        ("download_data.sh", []),
        ("push_datasets.py", []),
        ("push_kernel.py", ["inference"]),
        ("submit.py", []),
    ]:
        result = run_script(script, args, tmp_path)
        assert result.returncode == 2, (script, result.stderr)
        for named in ("kaggle auth login", "$KAGGLE_API_TOKEN", "access_token", "kaggle.json"):
            assert named in result.stderr, (script, named)
    assert {c["exit"] for c in calls(fake_kaggle)} == {1}  # the CLI decided, not the kit


@pytest.mark.parametrize(
    "form",
    ["token", "token-file", "access-token", "config-dir", "xdg-config", "legacy-pair", "oauth"],
)
def test_each_credential_form_the_cli_accepts_is_accepted(form, tmp_path, fake_kaggle) -> None:
    """EXT:KaggleApi.authenticate's order (docs/kaggle-cli.md §7); the user comes from
    `kaggle config view`."""
    home = tmp_path / "home"
    env: dict[str, str] = {"FAKE_KAGGLE_TOKEN_USER": "tina"}
    user = "tina"
    if form == "token":
        env["KAGGLE_API_TOKEN"] = "KGAT_123"
    elif form == "token-file":
        (tmp_path / "token").write_text("KGAT_123")
        env["KAGGLE_API_TOKEN"] = str(tmp_path / "token")
    elif form == "access-token":
        (home / ".kaggle").mkdir(parents=True)
        (home / ".kaggle" / "access_token").write_text("KGAT_123")
    elif form in ("config-dir", "xdg-config"):
        folder = tmp_path / "conf" if form == "config-dir" else home / ".config" / "kaggle"
        folder.mkdir(parents=True)
        (folder / "kaggle.json").write_text('{"username": "carol", "key": "k"}')
        if form == "config-dir":
            env["KAGGLE_CONFIG_DIR"] = str(folder)
        user = "carol"
    elif form == "legacy-pair":
        env.update(CREDENTIALS)
        user = "alice"
    else:
        (home / ".kaggle").mkdir(parents=True)
        (home / ".kaggle" / "credentials.json").write_text('{"username": "olga"}')
        user = "olga"
    result = run_module("eedi_utils.kaggle.cli", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kaggle user: {user}"


def run_module(module: str, tmp_path: Path, **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k != "HOME"}
    (tmp_path / "home").mkdir(exist_ok=True)
    environ.update(
        PATH=f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        HOME=str(tmp_path / "home"),
        FAKE_KAGGLE_DIR=str(tmp_path / "kaggle-state"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", module], env=environ, capture_output=True, text=True, timeout=60
    )


def test_download_data_unpacks_the_competition_files(tmp_path, fake_kaggle, sample) -> None:
    result = run_script(
        "download_data.sh",
        [str(tmp_path / "data")],
        tmp_path,
        FAKE_KAGGLE_DATA=str(sample),
        **CREDENTIALS,
    )
    assert result.returncode == 0, result.stderr
    assert {"train.csv", "test.csv", "misconception_mapping.csv"} <= {
        p.name for p in (tmp_path / "data").iterdir()
    }
    assert not list((tmp_path / "data").glob("*.zip"))


def test_push_datasets_creates_then_versions_keeping_subfolders_and_waits_until_ready(
    tmp_path, fake_kaggle, tiny_model, sample
) -> None:
    """Uploads are processed after the CLI returns (docs/kaggle-cli.md §4, §5)."""
    model = tmp_path / "runs" / "minilm-ft"
    shutil.copytree(tiny_model, model)
    (model / "checkpoints" / "checkpoint-9").mkdir(parents=True)
    (model / "checkpoints" / "checkpoint-9" / "optimizer.pt").write_bytes(b"0" * 10)
    config = tmp_path / "kit.toml"
    extra = sample / "train.csv"
    config.write_text(
        f'[retrieval]\nmodels = ["{model}"]\n[train]\nextra_train_files = ["{extra}"]\n'
    )
    (fake_kaggle / "dataset_statuses.txt").write_text("blobs_received\nblobs_decompressed\nready")
    args = ["--config", str(config), "--only", "model", "data", "--poll-seconds", "0"]
    first = run_script("push_datasets.py", args, tmp_path, **CREDENTIALS)
    assert first.returncode == 0, first.stderr
    # right after `datasets version` the status may still be the previous version's "ready"
    (fake_kaggle / "stale_ready.txt").write_text("2")
    second = run_script("push_datasets.py", args, tmp_path, **CREDENTIALS)
    assert second.returncode == 0, second.stderr
    made = [c["args"][1] for c in calls(fake_kaggle) if c["args"][0] == "datasets"]
    waited = ["status"] * 3  # blobs_received, blobs_decompressed, ready
    stale = ["status"] * 2  # ready, but still version 1
    assert made == ["status", "create", *waited] * 2 + ["status", "version", *stale, *waited] * 2
    asked = [c["args"] for c in calls(fake_kaggle) if c["args"][:2] == ["datasets", "status"]]
    assert asked[0][3:] == ["--format", "json(status,current_version_number)"]  # EXT:dataset_status
    assert "alice/eedi-kit-model: version 2 ready" in second.stdout
    uploads = [c for c in calls(fake_kaggle) if c["args"][1] in ("create", "version")]
    assert uploads[0]["meta"]["id"] == "alice/eedi-kit-model"
    assert uploads[0]["files"] == ["minilm-ft.zip"]  # the folder kept, as one archive
    assert uploads[1]["files"] == ["train.csv"]
    assert "alice/eedi-kit-model: version 1 ready" in first.stdout


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("dataset_error.txt", "Dataset creation error: Maximum dataset size exceeded"),
        ("dataset_statuses.txt", "could not process dataset alice/eedi-kit-code: failed"),
    ],
)
def test_push_datasets_fails_on_errors_the_cli_exits_0_with(
    scenario, message, tmp_path, fake_kaggle
) -> None:
    text = {"dataset_error.txt": "Maximum dataset size exceeded", "dataset_statuses.txt": "failed"}
    (fake_kaggle / scenario).write_text(text[scenario])
    result = run_script(
        "push_datasets.py", ["--only", "code", "--poll-seconds", "0"], tmp_path, **CREDENTIALS
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_push_datasets_builds_the_code_wheel_and_ships_the_config(tmp_path, fake_kaggle) -> None:
    config = tmp_path / "kit.toml"
    config.write_text('[kaggle]\nusername = "erin"\n')
    result = run_script(
        "push_datasets.py",
        ["--config", str(config), "--only", "code", "--no-wait"],
        tmp_path,
        KAGGLE_API_TOKEN="t",
    )
    assert result.returncode == 0, result.stderr
    (upload,) = [c for c in calls(fake_kaggle) if c["args"][1] == "create"]
    assert upload["meta"]["id"] == "erin/eedi-kit-code"
    assert "eedi-kit.toml" in upload["files"]
    assert "kaggle_bootstrap.py" in upload["files"]  # the notebooks' offline set-up
    assert any(f.startswith("eedi_kit-") and f.endswith(".whl") for f in upload["files"])


def ready_datasets(state: Path, *ids: str) -> None:
    (state / "datasets.json").write_text(json.dumps({i: ["ready"] for i in ids}))
    (state / "versions.json").write_text(json.dumps({i: 1 for i in ids}))


INFERENCE_SOURCES = ("alice/eedi-kit-code", "alice/eedi-kit-wheels")


def test_push_kernel_polls_the_version_it_pushed(tmp_path, fake_kaggle) -> None:
    """`kernels status owner/slug/N` is sent as version label vN (docs/kaggle-cli.md §2, kaggle
    2.2.5): the status is that version's, never the previous run's."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "kernels.json").write_text('{"alice/eedi-kit-inference": 2}')
    (fake_kaggle / "statuses.txt").write_text("queued\nrunning\nerror|CUDA OOM")
    build = tmp_path / "k"
    result = run_script(
        "push_kernel.py",
        ["inference", "--poll-seconds", "0", "--build-dir", str(build)],
        tmp_path,
        **CREDENTIALS,
    )
    assert result.returncode == 2
    assert "version 3 ended with status error: CUDA OOM" in result.stderr
    polled = [c["args"] for c in calls(fake_kaggle) if c["args"][:2] == ["kernels", "status"]]
    assert polled == [["kernels", "status", "alice/eedi-kit-inference/3"]] * 3
    assert json.loads((build / "inference" / "pushed.json").read_text())["version"] == 3


def test_a_version_with_no_run_is_not_waited_on_for_hours(tmp_path, fake_kaggle) -> None:
    """KernelWorkerStatus.NEW_SCRIPT (kagglesdk kernels_enums.py): no run to wait for."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "statuses.txt").write_text("new_script")
    build = ["--build-dir", str(tmp_path / "k"), "--poll-seconds", "0"]
    result = run_script("push_kernel.py", ["inference", *build], tmp_path, **CREDENTIALS)
    assert result.returncode == 2 and "version 1 has no run (new_script)" in result.stderr
    assert sum(c["args"][1] == "status" for c in calls(fake_kaggle)) == 10


def test_transient_status_errors_are_asked_again_and_the_run_is_never_lost(
    tmp_path, fake_kaggle
) -> None:
    """HTTP 500s from the status endpoint (kaggle-cli issue #1053; CLI:main prints them and
    exits 1, kernels status has no retry of its own): asked again with backoff; when they
    persist the run stays recorded and --wait-only resumes it."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "statuses.txt").write_text("running\ncomplete")
    (fake_kaggle / "status_failures.txt").write_text("2")
    build = ["--build-dir", str(tmp_path / "k"), "--poll-seconds", "0"]
    fast = {**CREDENTIALS, "EEDI_KAGGLE_RETRY_SECONDS": "0,0,0"}
    result = run_script("push_kernel.py", ["inference", *build], tmp_path, **fast)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("500 Server Error: Internal Server Error") == 1
    assert result.stdout.count("Internal error; asking again") == 1  # the JSON-body form
    (fake_kaggle / "status_failures.txt").write_text("99")
    failed = run_script("push_kernel.py", ["inference", *build], tmp_path, **fast)
    assert failed.returncode == 2
    assert (
        "failed 4 times" in failed.stderr and "This is a problem on Kaggle's side" in failed.stderr
    )
    assert "push_kernel.py inference --wait-only" in failed.stderr
    (fake_kaggle / "status_failures.txt").write_text("0")
    resumed = run_script("push_kernel.py", ["inference", "--wait-only", *build], tmp_path, **fast)
    assert resumed.returncode == 0, resumed.stderr
    pushes = [c for c in calls(fake_kaggle) if c["args"][:2] == ["kernels", "push"]]
    assert len(pushes) == 2  # --wait-only pushed nothing
    assert calls(fake_kaggle)[-1]["args"][:3] == ["kernels", "output", "alice/eedi-kit-inference/2"]


def test_only_the_files_a_kernel_is_known_for_are_downloaded(tmp_path, fake_kaggle) -> None:
    """`kernels output --file-pattern` is a regex searched in each output path (EXT:
    kernels_output): the wheels kernel's gigabytes stay on Kaggle, its manifest comes."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    output = tmp_path / "run-output"
    (output / "wheels").mkdir(parents=True)
    for name in ("wheels/manifest.json", "wheels/vllm-0.19.1-cp38-abi3-any.whl", "x.csv"):
        (output / name).write_text("{}")
    build = ["--build-dir", str(tmp_path / "k"), "--poll-seconds", "0"]
    env = {**CREDENTIALS, "FAKE_KAGGLE_OUTPUT": str(output)}
    result = run_script("push_kernel.py", ["wheels", *build], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    fetched = tmp_path / "k" / "wheels" / "output"
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*.*")) == [
        "eedi-kit-vllm-wheels.log",
        "wheels/manifest.json",
    ]


def test_push_kernel_polls_until_complete_and_fetches_output(tmp_path, fake_kaggle) -> None:
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "statuses.txt").write_text("queued\nrunning\ncomplete")
    build = tmp_path / "k"
    result = run_script(
        "push_kernel.py",
        ["inference", "--poll-seconds", "0", "--build-dir", str(build)],
        tmp_path,
        **CREDENTIALS,
    )
    assert result.returncode == 0, result.stderr
    made = [c["args"][:2] for c in calls(fake_kaggle) if c["args"][0] == "kernels"]
    assert made == [["kernels", "push"]] + [["kernels", "status"]] * 3 + [["kernels", "output"]]
    pushed = next(c for c in calls(fake_kaggle) if c["args"][:2] == ["kernels", "push"])
    assert pushed["meta"]["id"] == "alice/eedi-kit-inference"
    assert pushed["files"] == ["inference.ipynb"] and pushed["enable_internet"] is False
    output = build / "inference" / "output"
    assert sorted(p.name for p in output.iterdir()) == ["eedi-kit-inference.log", "submission.csv"]
    assert "version 1" in result.stdout and "complete after 0 s" in result.stdout


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        (
            "push_error.txt",
            "Kernel push error: Maximum weekly GPU quota of 30.00 hours reached.",
        ),
        (None, "The following are not valid dataset sources and could not be added"),
    ],
)
def test_push_kernel_fails_on_errors_the_cli_exits_0_with(
    scenario, message, tmp_path, fake_kaggle
) -> None:
    """EXT:kernels_push_cli prints these and exits 0 (docs/kaggle-cli.md §1)."""
    if scenario:
        ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
        (fake_kaggle / scenario).write_text(message.split(": ", 1)[1])
    else:
        ready_datasets(fake_kaggle, "alice/eedi-kit-code")  # the wheels were never pushed
    result = run_script(
        "push_kernel.py", ["inference", "--build-dir", str(tmp_path / "k")], tmp_path, **CREDENTIALS
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not any(c["args"][1] == "status" for c in calls(fake_kaggle))
    pushed = tmp_path / "k" / "inference" / "pushed.json"
    assert pushed.exists() is (scenario is None)  # the version exists: recorded, then refused
    if scenario is None:
        assert "version 1 was created and runs without these sources" in result.stderr


def test_submit_takes_the_version_push_kernel_recorded(tmp_path, fake_kaggle) -> None:
    """A code competition needs -k with -v (docs/kaggle-cli.md §6)."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "kernels.json").write_text('{"alice/eedi-kit-inference": 6}')
    build = ["--build-dir", str(tmp_path / "k")]
    pushed = run_script(
        "push_kernel.py", ["inference", "--no-wait", *build], tmp_path, **CREDENTIALS
    )
    assert pushed.returncode == 0, pushed.stderr
    result = run_script("submit.py", build, tmp_path, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    args = calls(fake_kaggle)[-1]["args"]
    assert args[:3] == ["competitions", "submit", COMPETITION]
    assert args[args.index("-k") + 1] == "alice/eedi-kit-inference"
    assert args[args.index("-v") + 1] == "7" and args[args.index("-f") + 1] == "submission.csv"
    assert "Successfully submitted to" in result.stdout
    older = run_script("submit.py", [*build, "--version", "5"], tmp_path, **CREDENTIALS)
    assert older.returncode == 0, older.stderr
    args = calls(fake_kaggle)[-1]["args"]
    assert args[args.index("-v") + 1] == "5"  # --version overrides the recorded one
    unknown = run_script("submit.py", [*build, "--version", "9"], tmp_path, **CREDENTIALS)
    assert unknown.returncode == 2 and "Could not find competition or notebook" in unknown.stderr


def test_the_cpu_kernel_is_pushed_fetched_and_submitted_like_the_gpu_one(
    tmp_path, fake_kaggle
) -> None:
    """Its own kernel id, no accelerator in what the CLI receives, submission.csv fetched,
    and submit.py --kernel inference-cpu submitting the version its push recorded."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    (fake_kaggle / "kernels.json").write_text('{"alice/eedi-kit-inference": 6}')
    (fake_kaggle / "statuses.txt").write_text("running\ncomplete")
    build = ["--build-dir", str(tmp_path / "k")]
    pushed = run_script(
        "push_kernel.py", ["inference-cpu", "--poll-seconds", "0", *build], tmp_path, **CREDENTIALS
    )
    assert pushed.returncode == 0, pushed.stderr
    push = next(c for c in calls(fake_kaggle) if c["args"][:2] == ["kernels", "push"])
    assert push["meta"]["id"] == "alice/eedi-kit-inference-cpu"
    assert push["files"] == ["inference-cpu.ipynb"] and push["enable_internet"] is False
    assert push["meta"]["enable_gpu"] is False and "machine_shape" not in push["meta"]
    output = tmp_path / "k" / "inference-cpu" / "output"
    assert sorted(p.name for p in output.iterdir()) == [
        "eedi-kit-inference-cpu.log",
        "submission.csv",
    ]
    result = run_script("submit.py", ["--kernel", "inference-cpu", *build], tmp_path, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    args = calls(fake_kaggle)[-1]["args"]
    assert args[args.index("-k") + 1] == "alice/eedi-kit-inference-cpu"
    assert args[args.index("-v") + 1] == "1"  # its own first version, not the GPU kernel's 7th
    other = run_script("submit.py", ["--kernel", "train", *build], tmp_path, **CREDENTIALS)
    assert other.returncode == 2 and "invalid choice: 'train'" in other.stderr


def test_submit_without_a_recorded_push_says_how_to_get_one(tmp_path, fake_kaggle) -> None:
    result = run_script("submit.py", ["--build-dir", str(tmp_path / "k")], tmp_path, **CREDENTIALS)
    assert result.returncode == 2
    assert "push the kernel with scripts/push_kernel.py first (or give submit.py --version N)" in (
        result.stderr
    )
    assert not any(c["args"][0] == "competitions" for c in calls(fake_kaggle))


def test_wheels_kernel_then_inference_attaching_its_output(tmp_path, fake_kaggle) -> None:
    """kernel_sources must name a kernel that exists (docs/kaggle-cli.md §1, invalid kernel
    sources exit 0): pushed in order, the inference kernel attaches the wheels kernel."""
    ready_datasets(fake_kaggle, *INFERENCE_SOURCES)
    config = tmp_path / "kit.toml"
    config.write_text("[kaggle]\nattach_vllm_wheels = true\n")
    build = ["--build-dir", str(tmp_path / "k"), "--config", str(config), "--no-wait"]
    early = run_script("push_kernel.py", ["inference", *build], tmp_path, **CREDENTIALS)
    assert early.returncode == 2
    assert "not valid kernel sources" in early.stderr and WHEELS_KERNEL in early.stderr
    wheels = run_script("push_kernel.py", ["wheels", *build], tmp_path, **CREDENTIALS)
    assert wheels.returncode == 0, wheels.stderr
    pushed = run_script("push_kernel.py", ["inference", *build], tmp_path, **CREDENTIALS)
    assert pushed.returncode == 0, pushed.stderr
    wheels_push, inference_push = [
        c for c in calls(fake_kaggle) if c["args"][:2] == ["kernels", "push"] and c["exit"] == 0
    ][-2:]
    assert wheels_push["enable_internet"] is True and wheels_push["files"] == ["wheels.ipynb"]
    assert inference_push["meta"]["kernel_sources"] == [f"alice/{WHEELS_KERNEL}"]


def test_from_datasets_to_a_submission_the_version_flows_from_push_to_submit(
    tmp_path, fake_kaggle, sample
) -> None:
    """build datasets -> push (processed asynchronously) -> kernel run -> output -> submit."""
    config = tmp_path / "kit.toml"
    config.write_text('[kaggle]\nwheel_requirements = ["six"]\n')
    (fake_kaggle / "dataset_statuses.txt").write_text("blobs_received\nready")
    (fake_kaggle / "kernels.json").write_text('{"alice/eedi-kit-inference": 4}')
    (fake_kaggle / "statuses.txt").write_text("queued\nrunning\ncomplete")
    output = tmp_path / "run-output"
    output.mkdir()
    shutil.copy(sample / "sample_submission.csv", output / "submission.csv")
    env = {**CREDENTIALS, "FAKE_KAGGLE_OUTPUT": str(output)}
    common = ["--config", str(config), "--build-dir", str(tmp_path / "build")]
    steps = [
        ("push_datasets.py", [*common, "--poll-seconds", "0"]),
        ("push_kernel.py", ["inference", *common, "--poll-seconds", "0"]),
        ("submit.py", common),
    ]
    for script, args in steps:
        result = run_script(script, args, tmp_path, **env)
        assert result.returncode == 0, (script, result.stderr)
    made = [c["args"][:2] for c in calls(fake_kaggle)]
    before_push = [m for m in made[: made.index(["kernels", "push"])] if m[0] == "datasets"]
    assert before_push[-2:] == [["datasets", "status"]] * 2  # waited until processed
    fetched = tmp_path / "build" / "inference" / "output" / "submission.csv"
    assert fetched.read_text() == (sample / "sample_submission.csv").read_text()
    submitted = calls(fake_kaggle)[-1]["args"]
    assert submitted[submitted.index("-v") + 1] == "5"  # the version the push reported
