"""`eedi predict` and `eedi evaluate` as a user runs them, and their error handling."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from eedi_utils.cli import COMMANDS, main
from eedi_utils.data import CompetitionData
from eedi_utils.submission import read_submission, validate_submission


def test_predict_writes_a_valid_submission(sample, tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "sub.csv"
    code = main(
        [
            "predict",
            "--data-dir",
            str(sample),
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--quiet",
        ]
    )
    assert code == 0
    data = CompetitionData(sample)
    validate_submission(
        read_submission(out), data.test(), set(data.misconceptions["MisconceptionId"])
    )
    assert f"data: {sample} (--data-dir)" in capsys.readouterr().err


def test_predict_top_k_and_config_file(sample, tiny_model, tmp_path) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(f'[retrieval]\nmodels = ["{tiny_model}"]\nbatch_size = 4\n')
    out = tmp_path / "sub.csv"
    assert (
        main(
            [
                "predict",
                "--data-dir",
                str(sample),
                "--out",
                str(out),
                "--config",
                str(config),
                "--top-k",
                "10",
                "--quiet",
            ]
        )
        == 0
    )
    assert {len(v.split()) for v in read_submission(out)["MisconceptionId"]} == {10}


def test_evaluate_prints_json_with_seen_unseen(sample, tiny_model, capsys) -> None:
    assert (
        main(
            [
                "evaluate",
                "--data-dir",
                str(sample),
                "--model",
                str(tiny_model),
                "--folds",
                "3",
                "--fold",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["fold"] == 1 and report["folds"] == 3
    assert report["seen"]["n"] + report["unseen"]["n"] == report["n"] > 0
    for key in ("map@25", "recall@25", "unseen_share", "rank_histogram"):
        assert key in report


def test_bad_data_exits_non_zero_naming_file_row_column(data_copy, capsys) -> None:
    path = data_copy / "train.csv"
    path.write_text(
        path.read_text(encoding="utf-8").replace("\n0,", "\nzero,", 1), encoding="utf-8"
    )
    assert main(["evaluate", "--data-dir", str(data_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "eedi: error:" in err and "train.csv, row 1 (QuestionId zero), column QuestionId" in err


def test_bad_config_and_bad_fold_exit_non_zero(sample, tmp_path, capsys) -> None:
    config = tmp_path / "kit.toml"
    config.write_text("[retrieval]\nbatch = 3\n")
    assert main(["predict", "--data-dir", str(sample), "--config", str(config)]) == 2
    assert "unknown key(s) ['batch']" in capsys.readouterr().err
    assert main(["evaluate", "--data-dir", str(sample), "--folds", "3", "--fold", "5"]) == 2
    assert "fold must be between 0 and 2" in capsys.readouterr().err


def test_help_reads_well(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "predict" in text and "evaluate" in text
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "--data-dir" in capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_prints_its_help(command: str, capsys) -> None:
    """argparse formats help texts with %: a setting's help saying "5%" must still print."""
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert "--quiet" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    executable = shutil.which("eedi")
    assert executable, "the `eedi` console script is not on PATH"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, check=True)
    assert "usage: eedi" in result.stdout


def _all_settings() -> list[tuple[str, str]]:
    import dataclasses
    import typing

    from eedi_utils.config import KitConfig

    hints = typing.get_type_hints(KitConfig)
    return [
        (section.name, setting.name)
        for section in dataclasses.fields(KitConfig)
        for setting in dataclasses.fields(hints[section.name])
    ]


def _subparser(command: str):
    from eedi_utils.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices[command]


def _flags(command: str) -> set[str]:
    from eedi_utils.cli import build_parser

    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    return {flag for action in subparser._actions for flag in action.option_strings}


def test_every_setting_has_one_flag_name_in_every_command() -> None:
    """`[section] key` is `--section-key` wherever it is read; the old derivation renamed a
    flag by command (`--dtype` for train, `--retrieval-dtype` for predict) and whenever
    another section gained the same key."""
    from eedi_utils.cli import flag_names, setting_flag
    from eedi_utils.config import COMMAND_SECTIONS, command_settings

    seen: dict[tuple[str, str], str] = {}
    for command in COMMAND_SECTIONS:
        names = flag_names(command)
        assert len(names) == len(command_settings(command))
        flags = [flag for both in names.values() for flag in both]
        assert len(set(flags)) == len(flags) and set(flags) <= _flags(command)
        for setting, (flag, *_) in names.items():
            assert seen.setdefault(setting, flag) == flag == setting_flag(*setting)
    assert {"--generate-n"} <= _flags("paraphrase") and "--generate-seed" not in _flags(
        "paraphrase"
    )
    assert {"--generate-per-misconception", "--generate-judge-model"} <= _flags("synthesize")
    assert {"--epochs", "--train-epochs", "--train-batch-size", "--retrieval-dtype"} <= _flags(
        "train"
    )
    assert {"--model", "--rerank-model", "--rerank", "--no-rerank", "--top-k"} <= _flags("predict")
    assert "--epochs" not in _flags("predict") and "--model" not in _flags("train")
    assert "--val-fold" not in _flags("train-reranker")  # two val_folds there: qualified only
    assert {"--train-val-fold", "--train-reranker-val-fold"} <= _flags("train-reranker")


def test_the_previous_flag_names_still_work_with_a_deprecation_line(capsys) -> None:
    from eedi_utils.cli import build_parser, config_from_args

    argv = [
        "train",
        "--output-dir",
        "x",
        "--dtype",
        "float32",
        "--lora-r",
        "8",
        "--no-show-progress",
    ]
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    assert config.retrieval.dtype == "float32" and config.train.lora_r == 8
    assert config.retrieval.show_progress is False
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    err = capsys.readouterr().err
    assert "--dtype is the flag name of 0.1" in err and "use --retrieval-dtype" in err
    assert "--lora-r is the flag name of 0.1" in err and "use --train-lora-r" in err
    assert "use --no-retrieval-show-progress ([retrieval] show_progress)" in err
    for command in ("train", "predict", "train-reranker"):
        shown = _subparser(command).format_help()
        assert (
            "--dtype " not in shown and "--lora-r " not in shown and "--show-progress" not in shown
        )


def test_a_setting_flag_names_one_setting_of_all_sections() -> None:
    """`--section-key` must not collide across sections (`[train] reranker_x` and
    `[train_reranker] x` would), nor an alias with a setting's flag, nor a 0.1 name with
    another meaning."""
    from eedi_utils.cli import EVERYDAY_FLAGS, previous_flag_names, setting_flag
    from eedi_utils.config import COMMAND_SECTIONS

    every = [setting_flag(*key) for key in _all_settings()]
    assert len(every) == len(set(every))
    aliases = {alias for alias, _ in EVERYDAY_FLAGS.values()}
    assert not aliases & set(every)
    meaning = {setting_flag(*key): key for key in _all_settings()}
    meaning |= {alias: key for key, (alias, _) in EVERYDAY_FLAGS.items()}
    for command in COMMAND_SECTIONS:
        for flag, key in previous_flag_names(command).items():
            # a 0.1 name that is a name of 0.2 means the same setting (0.1's `--top-k` in
            # `train`), except `--model`, 0.1's [generate]/[rerank] model where no retrieval
            # models were read: deprecated there, and a usage error from the next release
            assert meaning.get(flag, key) == key or flag == "--model", (command, flag)


def test_synthesize_refuses_paraphrase_only_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synthesize", "--out", "x", "--generate-n", "3", "--dry-run"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --generate-n 3" in capsys.readouterr().err


def test_flags_override_the_config_file_and_only_when_given(tmp_path) -> None:
    from eedi_utils.cli import build_parser, config_from_args

    config = tmp_path / "kit.toml"
    config.write_text('[retrieval]\nbatch_size = 4\ntop_k = 30\n[rerank]\nmodel = "llm"\n')
    args = build_parser().parse_args(
        ["predict", "--config", str(config), "--top-k", "10", "--rerank-windows", "[[1, 5]]"]
        + ["--rerank", "--model", "a", "--model", "b", "--no-rerank-reverse-pass"]
    )
    built = config_from_args(args)
    assert built.retrieval.batch_size == 4 and built.retrieval.top_k == 10
    assert built.rerank.windows == [[1, 5]] and built.rerank.enabled is True
    assert built.rerank.model == "llm" and built.rerank.reverse_pass is False
    assert built.retrieval.models == ["a", "b"]


def test_a_malformed_list_flag_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--rerank-windows", "[[1, 5]"])
    assert exit_info.value.code == 2
    assert "not a TOML value" in capsys.readouterr().err


def test_a_fold_outside_the_folds_is_a_usage_error_without_traceback(tmp_path, capsys) -> None:
    code = main(
        ["train", "--output-dir", str(tmp_path / "out"), "--folds", "3", "--val-fold", "3"]
        + ["--data-dir", str(tmp_path / "no-data")]  # refused before any data is read
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--val-fold [train].val_fold: 3 is not a fold of" in err
    assert "--folds [evaluate].folds = 3; allowed: -1 (none) to 2" in err


def test_a_bad_choice_names_the_file_or_the_flag(tmp_path, capsys) -> None:
    config = tmp_path / "kit.toml"
    config.write_text('[train]\nloss = "focal"\n')
    out, data = str(tmp_path / "out"), str(tmp_path / "no-data")
    assert main(["train", "--output-dir", out, "--config", str(config), "--data-dir", data]) == 2
    err = capsys.readouterr().err
    assert f"{config} [train].loss: 'focal' is not one of the allowed values" in err
    assert "'mnrl', 'cached_mnrl'" in err and "data folder" not in err
    assert main(["predict", "--retrieval-dtype", "float8", "--data-dir", data]) == 2
    err = capsys.readouterr().err
    assert "command line --retrieval-dtype [retrieval].dtype: 'float8'" in err
    assert "'auto', 'float32', 'bfloat16', 'float16'" in err
