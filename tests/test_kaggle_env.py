"""Input resolution order, rerun detection, and finding inputs by name on Kaggle."""

from __future__ import annotations

import pytest

from eedi_utils.inputs import (
    COMPETITION,
    CONFIG_FILE_NAME,
    attached_inputs,
    config_file,
    is_competition_rerun,
    output_dir,
    resolve_data_dir,
    resolve_input_path,
    sample_dir,
)


def test_resolution_order(tmp_path) -> None:
    explicit, from_env, kaggle = tmp_path / "a", tmp_path / "b", tmp_path / "kaggle"
    for folder in (explicit, from_env, kaggle / "input" / COMPETITION):
        folder.mkdir(parents=True)
    env = {"EEDI_DATA_DIR": str(from_env), "EEDI_KAGGLE_ROOT": str(kaggle)}
    assert resolve_data_dir(explicit, env).path == explicit
    assert resolve_data_dir(None, env).origin == "$EEDI_DATA_DIR"
    on_kaggle = resolve_data_dir(None, {"EEDI_KAGGLE_ROOT": str(kaggle)})
    assert on_kaggle.path == kaggle / "input" / COMPETITION
    fallback = resolve_data_dir(None, {"EEDI_KAGGLE_ROOT": str(tmp_path / "nowhere")})
    assert fallback.path == sample_dir() and fallback.origin == "bundled sample"
    assert (fallback.path / "test.csv").exists()


def test_competition_data_is_found_where_the_kaggle_cli_mounts_it(tmp_path) -> None:
    """Kernels pushed with the kaggle CLI get the competition at input/competitions/<slug>/."""
    mounted = tmp_path / "kaggle" / "input" / "competitions" / COMPETITION
    mounted.mkdir(parents=True)
    found = resolve_data_dir(None, {"EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle")})
    assert found.path == mounted and found.origin == "Kaggle competition input"


def test_inside_a_kernel_the_sample_is_never_used(tmp_path) -> None:
    environ = {"EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle"), "KAGGLE_KERNEL_RUN_TYPE": "Batch"}
    with pytest.raises(FileNotFoundError) as err:
        resolve_data_dir(None, environ)
    message = str(err.value)
    assert f"input/competitions/{COMPETITION}" in message and f"input/{COMPETITION}" in message
    assert "competition_sources" in message


def test_named_but_missing_folder_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="from --data-dir not found"):
        resolve_data_dir(tmp_path / "missing", {})
    with pytest.raises(FileNotFoundError, match="from \\$EEDI_DATA_DIR not found"):
        resolve_data_dir(None, {"EEDI_DATA_DIR": str(tmp_path / "gone")})


def test_rerun_flag_and_output_dir(tmp_path, monkeypatch) -> None:
    assert is_competition_rerun({"KAGGLE_IS_COMPETITION_RERUN": "1"})
    assert not is_competition_rerun({})
    (tmp_path / "working").mkdir()
    assert output_dir({"EEDI_KAGGLE_ROOT": str(tmp_path)}) == tmp_path / "working"
    monkeypatch.chdir(tmp_path)
    assert output_dir({"EEDI_KAGGLE_ROOT": str(tmp_path / "absent")}) == tmp_path


def test_a_missing_local_path_is_found_by_name_in_the_kaggle_inputs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle")}
    model = tmp_path / "kaggle" / "input" / "eedi-kit-model" / "minilm-ft"
    model.mkdir(parents=True)
    assert resolve_input_path("runs/minilm-ft", env) == model
    (tmp_path / "runs" / "minilm-ft").mkdir(parents=True)  # a local folder wins
    assert resolve_input_path("runs/minilm-ft", env).resolve() == tmp_path / "runs" / "minilm-ft"
    with pytest.raises(FileNotFoundError, match="'other' in any dataset under"):
        resolve_input_path("runs/other", env)


def test_a_bare_name_resolves_in_the_named_dataset_first_and_never_picks_among_several(
    tmp_path,
) -> None:
    inputs = tmp_path / "kaggle" / "input"
    competition = inputs / "competitions" / COMPETITION / "train.csv"
    generated = inputs / "datasets" / "alice" / "eedi-kit-data" / "train.csv"
    for path in (competition, generated):
        path.parent.mkdir(parents=True)
        path.write_text("QuestionId\n")
    env = {"EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle")}
    assert resolve_input_path("data/train.csv", env, dataset="eedi-kit-data") == generated
    with pytest.raises(FileExistsError) as err:
        resolve_input_path("data/train.csv", env)
    assert str(competition) in str(err.value) and str(generated) in str(err.value)
    with pytest.raises(FileNotFoundError, match="nor as 'other.csv' in dataset 'eedi-kit-data'"):
        resolve_input_path("other.csv", env, dataset="eedi-kit-data")


def test_config_file_from_variable_then_code_dataset(tmp_path) -> None:
    env = {"EEDI_KAGGLE_ROOT": str(tmp_path)}
    assert config_file(env) is None
    shipped = tmp_path / "input" / "eedi-kit-code" / CONFIG_FILE_NAME
    shipped.parent.mkdir(parents=True)
    shipped.write_text("")
    assert config_file(env) == shipped
    assert str(config_file({**env, "EEDI_CONFIG": "mine.toml"})) == "mine.toml"
    second = tmp_path / "input" / "other-code" / CONFIG_FILE_NAME
    second.parent.mkdir()
    second.write_text("")
    with pytest.raises(FileExistsError, match="several"):
        config_file(env)


def kaggle_tree(tmp_path) -> tuple[dict[str, str], dict[str, object]]:
    """Every kind of input in the layouts of kaggle-facts.md (CLI-pushed kernels, 2026)."""
    inputs = tmp_path / "kaggle" / "input"
    paths = {
        "competition": inputs / "competitions" / COMPETITION,
        "dataset": inputs / "datasets" / "alice" / "eedi-kit-model",
        "notebook": inputs / "notebooks" / "alice" / "eedi-kit-vllm-wheels",
        "model": inputs / "models" / "qwen" / "qwen2.5-0.5b" / "transformers" / "default" / "3",
        "older model": inputs / "smollm2" / "transformers" / "default" / "1",
    }
    for path in paths.values():
        path.mkdir(parents=True)
    (paths["dataset"] / "minilm-ft").mkdir()
    (paths["model"] / "config.json").write_text("{}")
    (paths["older model"] / "config.json").write_text("{}")
    return {"EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle")}, paths


def test_each_kind_of_input_is_found_in_each_layout_kaggle_has_used(tmp_path) -> None:
    env, paths = kaggle_tree(tmp_path)
    found = {(a.kind, a.slug): a.path for a in attached_inputs(env)}
    assert found == {
        ("competition", COMPETITION): paths["competition"],
        ("dataset", "eedi-kit-model"): paths["dataset"],
        ("notebook", "eedi-kit-vllm-wheels"): paths["notebook"],
        ("model", "qwen2.5-0.5b"): paths["model"],
        ("input", "smollm2"): paths["older model"].parents[2],  # the older flat layout
        ("model", "smollm2"): paths["older model"],
    }
    # a Kaggle Model named by its slug is its version folder, where config.json lies
    assert resolve_input_path("qwen2.5-0.5b", env) == paths["model"]
    assert resolve_input_path("models/smollm2", env) == paths["older model"]
    assert resolve_input_path("runs/minilm-ft", env) == paths["dataset"] / "minilm-ft"


def test_one_input_seen_in_two_layouts_is_one_match_not_an_error(tmp_path) -> None:
    env, paths = kaggle_tree(tmp_path)
    older = tmp_path / "kaggle" / "input" / "eedi-kit-model"
    older.symlink_to(paths["dataset"])  # the same folder at /kaggle/input/<slug>
    assert resolve_input_path("runs/minilm-ft", env) == paths["dataset"] / "minilm-ft"
    older.unlink()
    (older / "minilm-ft").mkdir(parents=True)  # another folder of that name: never a pick
    with pytest.raises(FileExistsError) as err:
        resolve_input_path("runs/minilm-ft", env)
    assert str(older / "minilm-ft") in str(err.value)


def test_a_missing_input_lists_every_input_it_looked_in(tmp_path) -> None:
    env, paths = kaggle_tree(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        resolve_input_path("runs/other-model", env, dataset="eedi-kit-model")
    message = str(err.value)
    assert "'other-model' in dataset 'eedi-kit-model' nor any other" in message
    assert all(str(path) in message for path in paths.values())
