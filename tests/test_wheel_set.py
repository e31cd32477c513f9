"""Kaggle's declared GPU and CPU images, and wheel sets that install offline on both.

The images are declared from their public sources (eedi_utils/kaggle/image-gpu.json and
image-cpu.json, derived by scripts/refresh_kaggle_image.py from Kaggle/docker-python's
Dockerfile.tmpl, rendered for each image, and kaggle_requirements.txt, and from
googlecolab/backend-info's pip-freeze.gpu.txt and os-info-gpu.txt, or pip-freeze.txt and
os-info.txt for the CPU runtime, of the base's day). The kit's wheel set is checked the way the
kernels' `pip install --no-index` would meet it: every requirement of every shipped wheel,
markers evaluated for CPython 3.12 on Linux x86_64, met by the set or by the image, on each
image.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from eedi_utils.kaggle.closure import Wheel, check_installs, read_wheels, unmet_requirements
from eedi_utils.kaggle.datasets import (
    CONSTRAINTS_FILE,
    WHEEL_SET_FILE,
    build_wheels_dataset,
    resolve_wheel_set,
)
from eedi_utils.kaggle.image import (
    IMAGE_FILE,
    KaggleImage,
    accelerator,
    declared_images,
    render_template,
)
from eedi_utils.kaggle.settings import KaggleConfig

PROJECT = Path(__file__).resolve().parents[1]
PIP_LOCAL = ["--no-index", "--find-links"]


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) declaring `requires`."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{stem}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    extras = sorted({e for r in requires for e in re.findall(r'extra == "([^"]+)"', r)})
    lines += [f"Provides-Extra: {extra}" for extra in extras]  # pip ignores an undeclared one
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{stem}.dist-info/METADATA", "\n".join(lines) + "\n")
        archive.writestr(
            f"{stem}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{stem}.dist-info/RECORD", "")
    return path


def image_of(
    packages: dict[str, str | None], python: str = "3.12.13", accelerator: str = ""
) -> KaggleImage:
    packages = {canonicalize_name(k): v for k, v in packages.items()}
    return KaggleImage(python, packages, accelerator=accelerator)


def test_the_declared_image_is_kaggles_gpu_image_as_its_sources_say() -> None:
    image = KaggleImage.load()
    declared = json.loads(IMAGE_FILE.read_text())
    assert image.accelerator == "gpu" and image.label == "the GPU image"
    assert image.python == "3.12.13" and image.python_minor == "3.12"  # os-info-gpu.txt
    assert image.base_image == "release-colab-external-images_20260514-060047_RC00"
    assert declared["sources"]["googlecolab/backend-info"]["date"] <= "2026-05-14T23:59:59"
    assert declared["sources"]["googlecolab/backend-info"]["files"] == [
        "pip-freeze.gpu.txt",
        "os-info-gpu.txt",
    ]
    assert declared["changed_by_kaggle"]["protobuf"] == (
        "Dockerfile.tmpl: protobuf==5.29.5 (5.29.6 -> 5.29.5)"
    )
    expected = {  # pip-freeze.gpu.txt of the base's day
        "torch": "2.10.0+cu128",
        "transformers": "5.0.0",
        "sentence-transformers": "5.4.1",
        "huggingface-hub": "1.11.0",
        "click": "8.3.3",
        "hf-xet": "1.4.3",
        "numpy": "2.0.2",
        "pandas": "2.2.2",
        "jiter": "0.10.0",  # kaggle_requirements.txt pins it below the base's 0.14.0
        "protobuf": "5.29.5",  # Dockerfile.tmpl force-reinstalls it over the base's 5.29.6
        "torchcodec": "0.10.0+cu128",  # kaggle_requirements' ==0.10.0 is met: uv keeps it
    }
    assert {name: image.version(name) for name in expected} == expected
    assert not image.has("httpx2") and not image.has("google-cloud-bigquery-storage")  # uninstalled
    assert image.has("grpcio-tools") and image.version("grpcio-tools") is None  # ">=1.60.0"
    assert image.satisfies(Requirement("grpcio-tools"))
    assert not image.satisfies(Requirement("grpcio-tools>=1.60"))  # version not in the lists
    assert image.satisfies(Requirement("torch>=2.10")) and not image.satisfies(
        Requirement("click>=8.4.2")
    )
    assert image.has("pycuda") and image.version("pycuda") is None  # the GPU image's block
    # pip-freeze.gpu.txt's `cucim-cu12 @ https://pypi.nvidia.com/.../cucim_cu12-26.2.0-...whl`
    assert image.version("cucim-cu12") == "26.2.0"  # the version in the wheel's file name


def test_the_declared_cpu_image_is_kaggles_cpu_image_as_its_sources_say() -> None:
    """Read from Kaggle/docker-python's Dockerfile.tmpl at 78aaa43 (2026-08-12), rendered for
    the CPU image: line 4 `FROM .../colab-images/public/cpu-runtime:release-colab-external-
    images_20260514-060047_RC00`, and the `{{ if eq .Accelerator "gpu" }}` block of lines 42-44
    (`uv pip install ... "pycuda"`) left out; and googlecolab/backend-info's pip-freeze.txt and
    os-info.txt at 6f38803 (2026-05-08), the last change of the CPU freeze on or before the
    base's day: `Python 3.12.13`; `torch @ https://download.pytorch.org/whl/cpu/torch-2.10.0%2Bcpu-
    cp312-cp312-manylinux_2_28_x86_64.whl`, `torchcodec @ .../torchcodec-0.10.0-cp312-...whl`,
    `transformers==5.0.0`, `sentence-transformers==5.4.1`, `numpy==2.0.2`, `tokenizers==0.22.2`,
    `protobuf==5.29.6`, `jiter==0.14.0`, no triton, pycuda or nvidia-* CUDA libraries."""
    image = KaggleImage.declared("cpu")
    declared = json.loads(accelerator("cpu").image_file.read_text())
    assert image.accelerator == "cpu" and image.label == "the CPU image"
    assert image.python == "3.12.13"  # os-info.txt
    assert image.base_image == "release-colab-external-images_20260514-060047_RC00"
    colab = declared["sources"]["googlecolab/backend-info"]
    assert colab["files"] == ["pip-freeze.txt", "os-info.txt"]
    assert colab["commit"].startswith("6f38803") and colab["date"] <= "2026-05-14T23:59:59"
    gpu = json.loads(IMAGE_FILE.read_text())["sources"]["Kaggle/docker-python"]
    assert declared["sources"]["Kaggle/docker-python"] == gpu  # one template for both images
    expected = {
        "torch": "2.10.0+cpu",  # the version in the wheel URL's file name
        "torchvision": "0.25.0+cpu",
        "torchcodec": "0.10.0",  # kaggle_requirements.txt's ==0.10.0 is met: kept
        "transformers": "5.0.0",
        "sentence-transformers": "5.4.1",
        "numpy": "2.0.2",
        "tokenizers": "0.22.2",
        "jiter": "0.10.0",  # kaggle_requirements.txt pins it below the base's 0.14.0
        "protobuf": "5.29.5",  # Dockerfile.tmpl force-reinstalls it over the base's 5.29.6
    }
    assert {name: image.version(name) for name in expected} == expected
    for absent in ("pycuda", "triton", "nvidia-cublas-cu12", "openvino", "onnxruntime"):
        assert not image.has(absent), absent
    assert image.satisfies(Requirement("torch>=2.10")) and image.has("grpcio-tools")
    assert [i.accelerator for i in declared_images()] == ["gpu", "cpu"]


def test_the_template_is_rendered_for_each_image() -> None:
    """The constructs of Kaggle/docker-python's Dockerfile.tmpl at 78aaa43: lines 1-5 (the
    FROM per accelerator, `{{ end}}` without its space), 42-44 and 162-170 (GPU-only blocks);
    its `build` script renders it with --ACCELERATOR=gpu for the GPU image, none otherwise."""
    template = (
        '{{ if eq .Accelerator "gpu" }}\nFROM r/runtime:release-colab_20260514-0\n{{ else }}\n'
        "FROM r/cpu-runtime:release-colab_20260514-0\n{{ end}}\nRUN common\n"
        '{{ if eq .Accelerator "gpu" }}\nRUN pycuda\n'
        '{{ if eq .Accelerator "tpu" }}RUN never{{ else }}RUN nested{{ end }}\n{{ end }}\nEND\n'
    )
    gpu, cpu = render_template(template, "gpu"), render_template(template, "cpu")
    assert [line for line in gpu.splitlines() if line] == [
        "FROM r/runtime:release-colab_20260514-0", "RUN common", "RUN pycuda", "RUN nested", "END",
    ]  # fmt: skip
    assert [line for line in cpu.splitlines() if line] == [
        "FROM r/cpu-runtime:release-colab_20260514-0", "RUN common", "END",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"line 2: '\{\{ \.Base \}\}' is not a construct"):
        render_template("RUN a\nFROM {{ .Base }}\n", "gpu")
    with pytest.raises(ValueError, match="not a construct"):
        render_template('{{- if eq .Accelerator "gpu" }}x{{ end }}', "cpu")  # trim markers
    with pytest.raises(ValueError, match="without `end`"):
        render_template('{{ if eq .Accelerator "gpu" }}\nRUN x\n', "cpu")
    with pytest.raises(ValueError, match="not a construct"):
        render_template("{{ end }}", "cpu")  # an `end` with no `if`
    with pytest.raises(ValueError, match="an unclosed"):
        render_template("RUN {{ if\n", "cpu")
    with pytest.raises(ValueError, match="unknown accelerator 'tpu'"):
        render_template(template, "tpu")


def git(folder: Path, *args: str, when: str = "") -> str:
    env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {}
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    return subprocess.run(
        ["git", "-C", str(folder), *identity, *args],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
    ).stdout.strip()


def test_refresh_takes_the_freeze_of_the_base_images_day_from_local_clones(tmp_path) -> None:
    """Both images from tiny clones laid out as Kaggle/docker-python at 78aaa43 (Dockerfile.tmpl
    steps, the FROM per accelerator, the GPU-only pycuda block) and googlecolab/backend-info
    (pip-freeze.gpu.txt and os-info-gpu.txt for the GPU runtime, pip-freeze.txt and os-info.txt
    for the CPU one, whose torch is a `torch @ <wheel URL>` line as at 6f38803). Each freeze is
    the last commit touching that file on or before the base's day: here the CPU freeze last
    changed on May 1, the GPU one on May 8, both again on May 21."""
    kaggle, colab = tmp_path / "docker-python", tmp_path / "backend-info"
    for repo in (kaggle, colab):
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
    tag = "release-colab-external-images_20260514-060047_RC00"
    colab_images = "us-docker.pkg.dev/colab-images/public"
    (kaggle / "Dockerfile.tmpl").write_text(  # the steps of docker-python's at 78aaa43
        f'{{{{ if eq .Accelerator "gpu" }}}}\nFROM {colab_images}/runtime:{tag}\n'
        f"{{{{ else }}}}\nFROM {colab_images}/cpu-runtime:{tag}\n{{{{ end}}}}\n"
        "RUN pip freeze | grep -E 'tensorflow|keras|torch|jax' > /colab_requirements.txt\n"
        "RUN uv pip install --system --no-cache -r /requirements.txt\n"
        "RUN uv pip uninstall --system --no-cache google-cloud-bigquery-storage\n"
        'RUN uv pip install --system --force-reinstall "protobuf==5.29.5" "setuptools>=70,<82"\n'
        '{{ if eq .Accelerator "gpu" }}\nRUN uv pip install --system --no-cache "pycuda"\n'
        "{{ end }}\n"
    )
    (kaggle / "kaggle_requirements.txt").write_text(
        "transformers>=5.0.0\nray\ntorchcodec==0.10.0\njiter==0.10.0\n"
    )
    git(kaggle, "add", ".")
    git(kaggle, "commit", "-q", "-m", "k", when="2026-08-12T14:34:23-07:00")
    wheels, tags = "https://download.pytorch.org/whl/cpu", "cp312-cp312-manylinux_2_28_x86_64"
    common = (
        "transformers==5.0.0\nprotobuf==5.29.6\njiter==0.14.0\n"
        "google-cloud-bigquery-storage==2.37.0\nsetuptools==75.2.0\n"
    )
    commits = {}
    for day, gpu_torch, cpu_torch, cpu_python in (
        ("2026-05-01", "2.9.1+cu128", "2.10.0", "3.12.11"),
        ("2026-05-08", "2.10.0+cu128", None, None),  # the CPU runtime's files unchanged
        ("2026-05-21", "2.11.0+cu128", "2.11.0", "3.12.13"),
    ):
        (colab / "os-info-gpu.txt").write_text("Ubuntu 22.04.5 LTS\nPython 3.12.13\n")
        (colab / "pip-freeze.gpu.txt").write_text(
            f"torch=={gpu_torch}\n{common}torchcodec==0.10.0+cu128\n"
        )
        if cpu_torch:
            (colab / "os-info.txt").write_text(f"Ubuntu 22.04.5 LTS\nPython {cpu_python}\n")
            (colab / "pip-freeze.txt").write_text(
                f"torch @ {wheels}/torch-{cpu_torch}%2Bcpu-{tags}.whl\n"
                f"{common}torchcodec @ {wheels}/torchcodec-0.10.0-{tags}.whl\n"
                "google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz\n"
            )
        git(colab, "add", ".")
        git(colab, "commit", "-q", "-m", day, when=f"{day}T12:00:00-07:00")
        commits[day] = git(colab, "rev-parse", "HEAD")
    refresh = PROJECT / "scripts" / "refresh_kaggle_image.py"
    done = subprocess.run(
        [sys.executable, str(refresh), "--target-dir", str(tmp_path),
         "--git", f"Kaggle/docker-python={kaggle / '.git'}",
         "--git", f"googlecolab/backend-info={colab / '.git'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("packages written to") == 2
    image = KaggleImage.load(tmp_path / "image-gpu.json")
    assert image.accelerator == "gpu" and image.base_image == tag
    assert image.version("torch") == "2.10.0+cu128"  # the freeze of May 8, not May 21
    assert image.version("torchcodec") == "0.10.0+cu128"  # ==0.10.0 is met: uv keeps it
    assert image.version("jiter") == "0.10.0" and image.version("transformers") == "5.0.0"
    assert not image.has("google-cloud-bigquery-storage")  # uninstalled
    assert image.has("setuptools") and image.version("setuptools") is None  # forced, a range
    assert image.has("pycuda") and image.version("pycuda") is None  # the GPU image's block
    assert (
        image.version("protobuf") == "5.29.5" and image.has("ray") and image.version("ray") is None
    )
    recorded = json.loads((tmp_path / "image-gpu.json").read_text())
    source = recorded["sources"]["googlecolab/backend-info"]
    assert recorded["python"] == "3.12.13" and source["date"].startswith("2026-05-08")
    assert source["commit"] == commits["2026-05-08"]
    assert recorded["changed_by_kaggle"]["ray"] == (
        "kaggle_requirements.txt: ray (absent -> version unknown)"
    )
    cpu = KaggleImage.load(tmp_path / "image-cpu.json")
    assert cpu.accelerator == "cpu" and cpu.base_image == tag  # the cpu-runtime FROM line
    assert cpu.version("torch") == "2.10.0+cpu"  # May 1's, the CPU freeze's last change
    assert cpu.python == "3.12.11"  # os-info.txt of that commit
    assert cpu.version("torchcodec") == "0.10.0" and cpu.version("jiter") == "0.10.0"
    assert cpu.has("google-colab") and cpu.version("google-colab") is None  # not a wheel URL
    assert cpu.version("protobuf") == "5.29.5" and not cpu.has("google-cloud-bigquery-storage")
    assert not cpu.has("pycuda")  # the GPU-only block is not the CPU image's
    recorded = json.loads((tmp_path / "image-cpu.json").read_text())
    source = recorded["sources"]["googlecolab/backend-info"]
    assert source["commit"] == commits["2026-05-01"] and source["until"] == "2026-05-14"
    assert source["files"] == ["pip-freeze.txt", "os-info.txt"]
    docker = recorded["sources"]["Kaggle/docker-python"]
    assert (
        docker
        == json.loads((tmp_path / "image-gpu.json").read_text())["sources"]["Kaggle/docker-python"]
    )
    assert docker["commit"] == git(kaggle, "rev-parse", "HEAD") and docker["ref"] == "main"
    only_cpu = subprocess.run(
        [sys.executable, str(refresh), "--target-dir", str(tmp_path / "cpu"),
         "--accelerator", "cpu", "--git", f"Kaggle/docker-python={kaggle / '.git'}",
         "--git", f"googlecolab/backend-info={colab / '.git'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert only_cpu.returncode == 0, only_cpu.stderr
    assert [p.name for p in (tmp_path / "cpu").iterdir()] == ["image-cpu.json"]


def test_the_set_ships_what_the_image_lacks_or_has_too_old_and_walks_their_needs(
    tmp_path,
) -> None:
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0", ("eedi-t-base>=1", "eedi-t-lib>=3",
                                            'eedi-t-speed; extra == "fast"'))  # fmt: skip
    make_wheel(index, "eedi-t-lib", "2.0")
    make_wheel(index, "eedi-t-lib", "3.0", ('eedi-t-new; python_version >= "3.12"',
                                            'eedi-t-old; python_version < "3.12"'))  # fmt: skip
    for name in ("eedi-t-new", "eedi-t-old", "eedi-t-speed", "eedi-t-base"):
        make_wheel(index, name, "1.0")
    image = image_of({"eedi-t-base": "1.5", "eedi-t-lib": "2.0"})
    folder = tmp_path / "set"
    wheel_set = resolve_wheel_set(
        ["eedi-t-app[fast]>=1"], [image], folder, ["any"], [*PIP_LOCAL, str(index)]
    )
    shipped = {name: str(w.version) for name, w in wheel_set.shipped.items()}
    assert shipped == {"eedi-t-app": "1.0", "eedi-t-lib": "3.0", "eedi-t-new": "1.0",
                       "eedi-t-speed": "1.0"}  # fmt: skip
    assert wheel_set.from_image == {"eedi-t-base": "1.5"}
    assert wheel_set.why["eedi-t-lib"] == (
        "eedi-t-app 1.0 requires eedi-t-lib>=3; eedi-t-lib 2.0 in the image"
    )
    # under Python 3.11 the other marker applies
    older = resolve_wheel_set(
        ["eedi-t-app>=1"], [image.with_python("3.11.7")], tmp_path / "set311", ["any"],
        [*PIP_LOCAL, str(index)],
    )  # fmt: skip
    assert "eedi-t-old" in older.shipped and "eedi-t-new" not in older.shipped


def test_extras_asked_of_an_image_package_are_walked_on_the_images_version(tmp_path) -> None:
    """`d[x]` left to the image still needs what extra x adds (read from the image's version of
    d); d's own plain needs are the image's business."""
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0", ("eedi-t-d[x]>=1",))
    make_wheel(index, "eedi-t-d", "1.0", ('eedi-t-e; extra == "x"', "eedi-t-plain"))
    make_wheel(index, "eedi-t-e", "1.0")
    image = image_of({"eedi-t-d": "1.0"})
    wheel_set = resolve_wheel_set(
        ["eedi-t-app"], [image], tmp_path / "set", ["any"], [*PIP_LOCAL, str(index)]
    )
    assert set(wheel_set.shipped) == {"eedi-t-app", "eedi-t-e"}
    assert wheel_set.from_image == {"eedi-t-d": "1.0"}
    assert sorted(p.name for p in (tmp_path / "set").iterdir())[0].startswith("eedi_t_app")
    assert not any("eedi_t_d" in p.name for p in (tmp_path / "set").iterdir())  # not shipped


def test_extras_of_a_package_the_images_have_at_two_releases_are_walked_on_each(
    tmp_path,
) -> None:
    """`d[x]` left to both images, at 1.0 on one and 2.0 on the other: what extra x adds is
    read from each release's metadata, and shipped when an image lacks it."""
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0", ("eedi-t-d[x]>=1",))
    make_wheel(index, "eedi-t-d", "1.0", ('eedi-t-e; extra == "x"',))
    make_wheel(index, "eedi-t-d", "2.0", ('eedi-t-f; extra == "x"',))
    for name in ("eedi-t-e", "eedi-t-f"):
        make_wheel(index, name, "1.0")
    gpu = image_of({"eedi-t-d": "1.0+cu128"}, accelerator="gpu")
    cpu = image_of({"eedi-t-d": "2.0"}, accelerator="cpu")
    wheel_set = resolve_wheel_set(
        ["eedi-t-app"], [gpu, cpu], tmp_path / "set", ["any"], [*PIP_LOCAL, str(index)]
    )
    assert set(wheel_set.shipped) == {"eedi-t-app", "eedi-t-e", "eedi-t-f"}
    assert wheel_set.why["eedi-t-e"] == (
        "eedi-t-d 1.0 in the GPU image requires eedi-t-e; not in the GPU image and the CPU image"
    )
    assert wheel_set.from_image == {"eedi-t-d": "1.0+cu128 in the GPU image, 2.0 in the CPU image"}


def test_a_wheel_already_in_the_folder_ends_the_walk_and_a_used_folder_is_refused(
    tmp_path,
) -> None:
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0")
    folder = tmp_path / "set"
    make_wheel(folder, "eedi-t-app", "1.0")  # pip: "File was already downloaded"
    wheel_set = resolve_wheel_set(
        ["eedi-t-app"], [image_of({})], folder, ["any"], [*PIP_LOCAL, str(index)]
    )
    assert set(wheel_set.shipped) == {"eedi-t-app"}
    with pytest.raises(ValueError, match="is not empty"):
        build_wheels_dataset(folder, ["eedi-t-app"], [image_of({})], ["any"])


def test_a_version_two_requirers_cannot_share_is_refused_naming_both(tmp_path) -> None:
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0", ("eedi-t-core==1.0", "eedi-t-plugin"))
    make_wheel(index, "eedi-t-plugin", "1.0", ("eedi-t-core>=2",))
    for version in ("1.0", "2.0"):
        make_wheel(index, "eedi-t-core", version)
    with pytest.raises(ValueError) as err:
        resolve_wheel_set(
            ["eedi-t-app"], [image_of({})], tmp_path / "set", ["any"], [*PIP_LOCAL, str(index)]
        )
    message = str(err.value)
    assert "eedi-t-core 1.0 was chosen" in message and "eedi-t-plugin 1.0" in message


def test_the_closure_check_names_each_unmet_requirement_and_what_was_found(tmp_path) -> None:
    needs = ("click>=8.4.2", "httpx2>=2.0.0", 'eedi-t-old; python_version < "3.12"')
    make_wheel(tmp_path, "huggingface-hub", "2.4.0", needs)
    image = image_of({"click": "8.3.3"})
    unmet = [str(u) for u in unmet_requirements(read_wheels([tmp_path]), image)]
    assert unmet == [
        "huggingface-hub 2.4.0 requires click>=8.4.2: not shipped, and click 8.3.3 in the image",
        "huggingface-hub 2.4.0 requires httpx2>=2.0.0: not shipped, and not in the image",
    ]
    older = unmet_requirements(read_wheels([tmp_path]), image.with_python("3.11.7"))
    assert any("eedi-t-old" in str(u) for u in older)
    roots = unmet_requirements(read_wheels([tmp_path]), image, ["huggingface-hub>=3"])
    assert (
        "the install command requires huggingface-hub>=3: the set ships huggingface-hub 2.4.0"
        in {str(u) for u in roots}
    )


def test_one_set_serves_both_images_and_is_checked_on_each(tmp_path) -> None:
    """A requirement the GPU image meets and the CPU image does not (as openvino or a CUDA-only
    package would be): a set resolved for the GPU image alone installs there and not on the CPU
    image, and the check says which image; resolved for both, the set ships it, and the name
    the images have at different builds (torch 2.10.0+cu128 / 2.10.0+cpu in image-gpu.json and
    image-cpu.json) is left to each image."""
    index = tmp_path / "index"
    make_wheel(index, "eedi-t-app", "1.0", ("eedi-t-lib>=2", "eedi-t-base", "eedi-t-torch>=2.10"))
    make_wheel(index, "eedi-t-lib", "2.0")
    gpu = image_of(
        {"eedi-t-lib": "2.0", "eedi-t-base": "1.0", "eedi-t-torch": "2.10.0+cu128"},
        accelerator="gpu",
    )
    cpu = image_of({"eedi-t-base": "1.0", "eedi-t-torch": "2.10.0+cpu"}, accelerator="cpu")
    options = [*PIP_LOCAL, str(index)]
    for_gpu = resolve_wheel_set(["eedi-t-app"], [gpu], tmp_path / "gpu", ["any"], options)
    assert set(for_gpu.shipped) == {"eedi-t-app"}
    wheels = read_wheels([tmp_path / "gpu"])
    assert unmet_requirements(wheels, gpu, ["eedi-t-app"]) == []
    unmet = "eedi-t-app 1.0 requires eedi-t-lib>=2: not shipped, and not in the CPU image"
    assert [str(u) for u in unmet_requirements(wheels, cpu, ["eedi-t-app"])] == [unmet]
    with pytest.raises(ValueError) as err:
        check_installs(wheels, [gpu, cpu], ["eedi-t-app"])
    assert str(err.value) == f"the wheel set would not install on the CPU image:\n  {unmet}"
    check_installs(wheels, [gpu], ["eedi-t-app"])  # installs on the GPU image

    folder = build_wheels_dataset(tmp_path / "both", ["eedi-t-app"], [gpu, cpu], ["any"], options)
    recorded = json.loads((folder / WHEEL_SET_FILE).read_text())
    assert recorded["shipped"] == {
        "eedi-t-app==1.0": "eedi-kit requires eedi-t-app; not in the GPU image and the CPU image",
        "eedi-t-lib==2.0": "eedi-t-app 1.0 requires eedi-t-lib>=2; not in the CPU image",
    }
    assert recorded["left_to_the_image"] == {
        "eedi-t-base": "1.0",
        "eedi-t-torch": "2.10.0+cu128 in the GPU image, 2.10.0+cpu in the CPU image",
    }
    assert [c["image"] for c in recorded["checked_against"]] == ["gpu", "cpu"]
    check_installs(read_wheels([folder]), [gpu, cpu], ["eedi-t-app"])
    with pytest.raises(ValueError, match="one Python on every image"):
        resolve_wheel_set(
            ["eedi-t-app"], [gpu, cpu.with_python("3.13.1")], tmp_path / "py", ["any"], options
        )


@pytest.fixture(scope="module")
def built_datasets(tmp_path_factory) -> Path:
    """The code and wheels datasets as `scripts/push_datasets.py --build-only` builds them (a
    real pip download from PyPI for Kaggle's Python and platform)."""
    build = tmp_path_factory.mktemp("build")
    script = PROJECT / "scripts" / "push_datasets.py"
    done = subprocess.run(
        [sys.executable, str(script), "--build-only", "--only", "code", "wheels",
         "--user", "me", "--build-dir", str(build)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return build


RUNTIMES = ("openvino", "onnxruntime")
"""The CPU runtimes of an exported model (extra `cpu`)."""


@pytest.mark.slow
def test_the_kits_datasets_install_offline_on_kaggles_image(built_datasets: Path) -> None:
    config = KaggleConfig()
    folders = [built_datasets / config.code_dataset, built_datasets / config.wheels_dataset]
    wheels = read_wheels(folders)
    for image in declared_images():  # the GPU kernels' image and the CPU kernel's
        assert unmet_requirements(wheels, image, ["eedi-kit[default-model,cpu]"]) == []
    # what huggingface_hub 2.4.0 needs beyond the images travels; each image's torch stays
    assert {"click", "hf-xet", "httpx2", "transformers", "eedi-kit"} <= set(wheels)
    assert "torch" not in wheels and "numpy" not in wheels
    # the cpu extra: neither image has either runtime, their protobuf and numpy do
    assert {"openvino", "openvino-telemetry", "onnxruntime"} <= set(wheels)
    assert "protobuf" not in wheels and "flatbuffers" not in wheels
    for name in ("transformers", "sentence-transformers", "huggingface-hub", *RUNTIMES):
        assert str(wheels[name].version) == metadata.version(name)  # what the tests ran
    for name in RUNTIMES:  # compiled: built for the image's CPython 3.12 on x86_64 Linux
        assert re.search(r"-cp312-cp312-manylinux\S*_x86_64\.whl$", wheels[name].path.name)
    recorded = json.loads((folders[1] / WHEEL_SET_FILE).read_text())
    assert [c["image"] for c in recorded["checked_against"]] == ["gpu", "cpu"]
    assert recorded["left_to_the_image"]["torch"] == (
        "2.10.0+cu128 in the GPU image, 2.10.0+cpu in the CPU image"
    )
    assert recorded["left_to_the_image"]["numpy"] == "2.0.2"
    assert recorded["shipped"][f"click=={wheels['click'].version}"].endswith(
        "; click 8.3.3 in the GPU image and the CPU image"
    )


def python_of(minor: str) -> str | None:
    """A Python `minor` with pip on this machine (PATH, else pyenv's versions), or None."""
    candidates = [shutil.which(f"python{minor}")]
    candidates += sorted(glob.glob(f"{Path.home()}/.pyenv/versions/{minor}.*/bin/python{minor}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


def resolved_report(requirements: list[str], constraints: Path, image: KaggleImage) -> dict:
    """pip's resolution for Kaggle's Python and platform from package metadata only (PEP 658:
    nothing large is downloaded): what a `pip download` of these requirements would fetch.
    pip evaluates markers for the Python it runs on, whatever --python-version says (vLLM
    0.19.1 requires setuptools<81 only when python_version > "3.11"), so it runs under the
    image's minor version."""
    python = python_of(image.python_minor)
    if python is None:
        pytest.skip(f"needs a Python {image.python_minor} with pip (pip evaluates markers for "
                    "its own Python): install one, e.g. with pyenv")  # fmt: skip
    report = constraints.parent / "report.json"
    platforms = [a for p in KaggleConfig().platforms for a in ("--platform", p)]
    command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--report", str(report), "--only-binary=:all:",
               "--python-version", image.python_minor, "--implementation", "cp", *platforms,
               "--target", str(constraints.parent / "target"), "-c", str(constraints),
               *requirements]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.slow
def test_the_vllm_set_resolved_under_the_kits_pins_installs_on_kaggles_image(
    built_datasets: Path,
) -> None:
    """An approximation of what notebooks/wheels.py asks of pip on Kaggle (test_wheels_kernel
    runs the notebook itself on stand-ins): resolved from scratch here (`--ignore-installed`
    takes the newest of every name where Kaggle's pip keeps what the image has), then what the
    image has at the same version left out. vLLM 0.19.1 accepts any transformers >= 4.56
    outside 5.0-5.5, so unconstrained it would ship the newest and replace the kit's; under the
    wheels dataset's constraints.txt it keeps the kit's pins."""
    image = KaggleImage.load()
    constraints = built_datasets / KaggleConfig().wheels_dataset / CONSTRAINTS_FILE
    roots = ["vllm==0.19.1", "bitsandbytes==0.50.2"]
    report = resolved_report(roots, constraints, image)
    resolved = {}
    for item in report["install"]:
        meta = item["metadata"]
        name, version = canonicalize_name(meta["name"]), meta["version"]
        if image.version(name) and image.version(name).split("+")[0] == version:
            continue  # the wheels kernel leaves what the image has at the same version
        requires = tuple(Requirement(r) for r in meta.get("requires_dist", []))
        resolved[name] = Wheel(Path(item["download_info"]["url"]), name, Version(version), requires)
    assert str(resolved["transformers"].version) == metadata.version("transformers")
    assert "torch" not in resolved  # vLLM 0.19.1 pins the image's torch 2.10.0
    assert resolved["protobuf"].version >= Version("5.29.6")  # beyond the image's forced 5.29.5
    assert unmet_requirements(resolved, image, roots) == []
