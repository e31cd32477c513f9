"""Kaggle kernels: the py:percent notebooks built to ipynb beside their kernel-metadata.json."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eedi_utils.config import KitConfig
from eedi_utils.extras import require
from eedi_utils.inputs import COMPETITION
from eedi_utils.kaggle.datasets import DATASET_KINDS, dataset_slugs, datasets_in_use

jupytext = require("jupytext", "building a kernel notebook")
nbformat = require("nbformat", "building a kernel notebook")

METADATA_FILE = "kernel-metadata.json"
MACHINE_SHAPE = "NvidiaTeslaT4"
"""GPU T4 x2; without it Kaggle gives a P100, which its current image no longer supports."""
WHEELS_KERNEL = "eedi-kit-vllm-wheels"
"""The kernel that builds the vLLM wheels on Kaggle's image (notebooks/wheels.py), online."""


@dataclass(frozen=True)
class KernelNeeds:
    """What a kernel's metadata must say about its machine and its inputs."""

    internet: bool = False
    """Online; a code competition's kernels run offline, so only helpers may be."""
    gpu: bool = True
    """GPU T4 x2 (`machine_shape` NvidiaTeslaT4). False: a CPU session, `enable_gpu` false and
    no `machine_shape` (kaggle 2.2.5, kaggle_api_extended.py: `kernels_push` sends
    `machine_shape` None when the metadata has none, and `kernels_initialize` writes
    `"enable_gpu": "false", "machine_shape": ""` for a new kernel; docs/kaggle-cli.md §1)."""
    competition: bool = True
    """The competition data attached."""
    notebook: str = ""
    """The py:percent source in notebooks/ when it is not the code_file's own stem."""


KERNEL_NEEDS = {
    "inference.ipynb": KernelNeeds(),
    # the efficiency track's entry: the same notebook on a CPU-only session (no accelerator)
    "inference-cpu.ipynb": KernelNeeds(gpu=False, notebook="inference.py"),
    "train.ipynb": KernelNeeds(),
    # pip downloads vLLM and its dependencies from PyPI, on the GPU image it will run on
    "wheels.ipynb": KernelNeeds(internet=True, competition=False),
    # calls an OpenAI-compatible API; nothing runs on an accelerator, so no GPU quota is spent
    "paraphrase.ipynb": KernelNeeds(internet=True, gpu=False),
}
"""Per built notebook; a notebook not listed here must be offline, on T4 x2, with the data."""
ONLINE_NOTEBOOKS = {name for name, needs in KERNEL_NEEDS.items() if needs.internet}
"""Kernels that need the internet; every other kernel must run offline (a code competition)."""
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def slugify(title: str) -> str:
    """Kaggle's slug of a title: lowercase, runs of other characters become one dash."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def build_notebook(source: Path, target: Path) -> Path:
    """Write the py:percent `source` as a valid ipynb with no outputs."""
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


def _fill(value: Any, names: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        unknown = set(PLACEHOLDER.findall(value)) - set(names)
        if unknown:
            raise ValueError(f"{where}: unknown placeholder(s) {sorted(unknown)} in {value!r}")
        return PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(item, names, where) for item in value]
    return value


def render_metadata(template: Path, user: str, config: KitConfig) -> dict[str, Any]:
    """The committed template with {username} and the [kaggle] dataset slugs filled in.

    Dataset sources this config does not use are left out, so a kernel never names a dataset
    that was not pushed.
    """
    kaggle = config.kaggle
    slugs = {f"{kind}_dataset": slug for kind, slug in dataset_slugs(config).items()}
    names = {"username": user, **slugs}
    in_use = datasets_in_use(config)
    unused = [f"{{{kind}_dataset}}" for kind in DATASET_KINDS if kind not in in_use]
    raw = json.loads(template.read_text(encoding="utf-8"))
    raw["dataset_sources"] = [
        source
        for source in raw.get("dataset_sources", [])
        if not any(placeholder in source for placeholder in unused)
    ]
    meta = {key: _fill(value, names, f"{template} {key}") for key, value in raw.items()}
    meta["dataset_sources"] = [*meta["dataset_sources"], *kaggle.extra_dataset_sources]
    meta["model_sources"] = [*meta.get("model_sources", []), *kaggle.model_sources]
    if kaggle.attach_vllm_wheels and meta.get("code_file") not in ONLINE_NOTEBOOKS:
        meta["kernel_sources"] = [*meta.get("kernel_sources", []), f"{user}/{WHEELS_KERNEL}"]
    return meta


def metadata_problems(meta: dict[str, Any], folder: Path | None = None) -> list[str]:
    """Every way `meta` breaks the rules the kit's kernels must follow; empty if none."""
    problems = []
    needs = KERNEL_NEEDS.get(str(meta.get("code_file", "")), KernelNeeds())
    expected = {
        "language": "python",
        "kernel_type": "notebook",
        "enable_gpu": needs.gpu,
        **({"machine_shape": MACHINE_SHAPE} if needs.gpu else {}),
        "enable_internet": needs.internet,
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            problems.append(f"{key} must be {value!r}, is {meta.get(key, '<missing>')!r}")
    if meta.get("enable_tpu", False) is not False:  # the CLI's default: no kernel wants one
        problems.append(f"enable_tpu must be False or left out, is {meta['enable_tpu']!r}")
    if not needs.gpu and meta.get("machine_shape"):
        problems.append(
            f"machine_shape must be left out on a kernel without GPU: {meta['machine_shape']!r}"
        )
    title = str(meta.get("title", ""))
    if len(title) < 5:
        problems.append(f"title must have at least 5 characters: {title!r}")
    kernel_id = str(meta.get("id", ""))
    if kernel_id.count("/") != 1 or kernel_id.split("/")[1] != slugify(title):
        problems.append(f"id must be '<user>/{slugify(title)}' (the title's slug): {kernel_id!r}")
    if needs.competition and COMPETITION not in meta.get("competition_sources", []):
        problems.append(f"competition_sources must include {COMPETITION!r}")
    for source in meta.get("dataset_sources", []):  # kaggle CLI: validate_dataset_string
        if not re.fullmatch(r"[\w-]+/[a-z0-9-]{6,50}(/\d+)?", source):
            problems.append(
                f"dataset source must be '<owner>/<slug of 6-50>[/<version>]': {source!r}"
            )
    code_file = str(meta.get("code_file", ""))
    if not code_file.endswith(".ipynb"):
        problems.append(f"code_file must be the built .ipynb: {code_file!r}")
    elif folder is not None and not (folder / code_file).is_file():
        problems.append(f"code_file {code_file} is not in {folder}")
    return problems


def source_notebook(code_file: str) -> str:
    """The file in notebooks/ that `code_file` is built from (KernelNeeds.notebook, else the
    code_file's stem as .py)."""
    needs = KERNEL_NEEDS.get(code_file, KernelNeeds())
    return needs.notebook or Path(code_file).with_suffix(".py").name


def build_kernel(
    template_dir: Path, notebooks: Path, target: Path, user: str, config: KitConfig
) -> Path:
    """A pushable folder: the notebook built from notebooks/<stem>.py and its metadata."""
    meta = render_metadata(template_dir / METADATA_FILE, user, config)
    code_file = str(meta.get("code_file", ""))
    build_notebook(notebooks / source_notebook(code_file), target / code_file)
    problems = metadata_problems(meta, target)
    if problems:
        raise ValueError(f"{template_dir / METADATA_FILE}:\n  " + "\n  ".join(problems))
    (target / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target


def kernel_id(folder: Path) -> str:
    """The id of a built kernel folder."""
    return str(json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))["id"])


PUSHED_FILE = "pushed.json"


def record_push(folder: Path, version: int) -> Path:
    """Write the kernel id and the version a push reported beside the built kernel."""
    path = folder / PUSHED_FILE
    path.write_text(json.dumps({"id": kernel_id(folder), "version": version}))
    return path


def pushed_version(folder: Path, expected_id: str) -> int:
    """The version last pushed from `folder` (its pushed.json), for the kernel `expected_id`."""
    path = folder / PUSHED_FILE
    if not path.is_file():
        raise ValueError(
            f"no pushed version recorded in {path}: push the kernel with scripts/push_kernel.py "
            "first (or give submit.py --version N)"
        )
    pushed = json.loads(path.read_text())
    if pushed["id"] != expected_id:
        raise ValueError(f"{path} records {pushed['id']}, not {expected_id}: pass --version N")
    return int(pushed["version"])
