"""Write docs/config.md, the config reference: every section and setting with its type,
default, commands and help, from the config dataclasses' metadata (a test keeps the file in
sync)."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

from eedi_utils.cli import EVERYDAY_FLAGS
from eedi_utils.config import COMMAND_SECTIONS, RANGES, KitConfig, range_text

TARGET = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " \\| ".join(f"`{choice!r}`" for choice in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is not None:
        arguments = ", ".join(_type_name(arg) for arg in typing.get_args(hint))
        return f"{typing.get_origin(hint).__name__}[{arguments}]"
    return "none" if hint is type(None) else hint.__name__


def config_reference() -> str:
    """docs/config.md: every section and setting with its type, default, commands and help,
    generated from the dataclasses (scripts/write_config_reference.py writes it)."""
    aliases = ", ".join(
        f"`{alias}` ({', '.join(f'`{c}`' for c in commands)})"
        for alias, commands in EVERYDAY_FLAGS.values()
    )
    lines = [
        "# Config reference",
        "",
        "Generated from the config dataclasses by `python scripts/write_config_reference.py`;",
        "a test keeps it in sync. One TOML file holds a section per stage; every key is",
        "optional. A setting is also a flag of the `eedi` commands listed beside it, with one",
        "name in every command: `[section] key` is `--section-key`, underscores as hyphens",
        "(`[train] lora_r` is `--train-lora-r`). Two are named: `[retrieval] models` is",
        "`--model PATH`, once per folder; `[rerank] enabled` is `--rerank/--no-rerank`. Short",
        "aliases of everyday settings: " + aliases + ". Lists and tables are given to flags in",
        "TOML syntax. The 0.1 names (`--key` where the key was unique in the command) still",
        "work in 0.2 with a deprecation line, and go in the next release.",
        "Every value is checked when the config is loaded (type, the choices and ranges in the",
        "type column, a fold index below `[evaluate] folds`); a bad one stops the command",
        "(exit 2) with the file or flag, section, key and what is allowed.",
    ]
    hints = typing.get_type_hints(KitConfig)
    for section in dataclasses.fields(KitConfig):
        cls = hints[section.name]
        users = [c for c, sections in COMMAND_SECTIONS.items() if section.name in sections]
        lines += ["", f"## [{section.name}]", "", " ".join(cls.__doc__.split()), ""]
        lines += ["| key | type | default | commands | meaning |", "|---|---|---|---|---|"]
        setting_hints = typing.get_type_hints(cls)
        for setting in dataclasses.fields(cls):
            default = (
                setting.default_factory()
                if setting.default_factory is not dataclasses.MISSING
                else setting.default
            )
            commands = setting.metadata.get("commands", users)
            shown = ", ".join(f"`{c}`" for c in commands) or "notebooks only"
            if section.name == "kaggle":
                shown = "scripts/"
            text = " ".join(setting.metadata.get("help", "").split()).replace("|", "\\|")
            value = repr(default).replace("|", "\\|").replace("\n", "\\n")
            kind = _type_name(setting_hints[setting.name])
            if (section.name, setting.name) in RANGES:
                kind += f" {range_text(RANGES[(section.name, setting.name)])}"
            if setting.name == "val_fold":
                kind += ", below [evaluate] folds"
            lines.append(f"| `{setting.name}` | {kind} | `{value}` | {shown} | {text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(config_reference(), encoding="utf-8")
    print(f"wrote {TARGET}")
