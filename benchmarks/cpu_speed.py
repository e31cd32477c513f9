"""CPU speed of every runtime and precision the kit offers, with the ranking quality of each.

For the bundled all-MiniLM-L6-v2 and, with --fine-tuned, a model `eedi train` wrote: a bare
`SentenceTransformer.encode` in fp32 (the reference), then the kit in torch (fp32, and bf16
where the CPU runs it natively) and in each export `eedi export` writes (OpenVINO and ONNX
Runtime, fp32 and int8; OpenVINO computing in fp32, and in bf16 where native). Per row:
encoding seconds for the scored fold's queries and all misconception names (tokenising and
forward passes of one ranking split into its stages in a fresh process by
`benchmarks/cpu_stages.py`, beside start-up, data and texts, loading, top-k and scoring; an
export tokenises while its streams run, so only the sum of the two is exact there),
end-to-end seconds of `eedi evaluate` in another fresh process (the median of --repeats runs),
both as ratios to the bare fp32 encode and to fp32 torch end to end, and MAP@25, seen, unseen
and map@25_lb on the fold the model never trained on (fold 0 for the base model), and the
heavy libraries the run imported. The CPU's name and flags lead the output; rows are appended
to --results.

    python benchmarks/cpu_speed.py --fine-tuned /tmp/eedi-cv/default/fold-0 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.config import KitConfig
from eedi_utils.cpu import cpu_flags, cpu_name, cpu_runs_bf16_fast, cpu_threads
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.embedder import default_model_path
from eedi_utils.metrics import lb_key, map_key
from eedi_utils.pipeline import held_out_fold
from eedi_utils.splits import config_folds
from eedi_utils.text import misconception_texts, query_texts

REPO = Path(__file__).resolve().parents[1]
EXPORTS = {  # name: (format, quantize)
    "openvino-fp32": ("openvino", "none"),
    "openvino-int8": ("openvino", "int8"),
    "onnx-fp32": ("onnx", "none"),
    "onnx-int8": ("onnx", "int8"),
}
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
"""The CPU flags that decide bf16 and int8 speed."""


def runs(exports: dict[str, Path], native_bf16: bool) -> list[tuple[str, str, str]]:
    """(row name, model key, [retrieval] dtype) of every row."""
    rows = [("torch fp32", "source", "float32")]
    if native_bf16:
        rows.append(("torch bf16 (dtype auto)", "source", "bfloat16"))
    for name in exports:
        if name.startswith("openvino"):
            rows.append((f"{name}, computing fp32", name, "float32"))
            if native_bf16:
                rows.append((f"{name}, computing bf16 (dtype auto)", name, "bfloat16"))
        else:
            rows.append((name, name, "float32"))
    return rows


def end_to_end(model: Path, dtype: str, data_dir: Path, fold: int | None) -> tuple[dict, float]:
    """`eedi evaluate` of `model` in a fresh process: its report and wall seconds."""
    command = [sys.executable, "-m", "eedi_utils.cli", "evaluate", "--quiet", "--data-dir",
               str(data_dir), "--model", str(model), "--retrieval-dtype", dtype,
               "--retrieval-device", "cpu"]  # fmt: skip
    if fold is not None:
        command += ["--fold", str(fold)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout), time.perf_counter() - started


def stages(model: Path, dtype: str, data_dir: Path, fold: int) -> dict:
    """`benchmarks/cpu_stages.py` of `model`: seconds per stage of one ranking, fresh process."""
    command = [sys.executable, str(REPO / "benchmarks" / "cpu_stages.py"), str(model),
               "--dtype", dtype, "--fold", str(fold), "--data-dir", str(data_dir)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def export(source: Path, out: Path, fmt: str, quantize: str, data_dir: Path) -> float:
    """`eedi export` without its check (this benchmark scores every row itself); seconds."""
    command = [sys.executable, "-m", "eedi_utils.cli", "export", str(source), "--to", str(out),
               "--overwrite", "--quiet", "--data-dir", str(data_dir), "--format", fmt,
               "--quantize", quantize, "--no-export-check"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started


def bench_model(name: str, source: Path, args: argparse.Namespace) -> list[dict]:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.retrieval.device = "cpu"
    held = held_out_fold([source], config)
    if held.fine_tuned and held.fold is None:
        print(f"{name} skipped: {held.reason}", file=sys.stderr)
        return []
    held.apply(config)
    fold = held.fold if held.fine_tuned else 0
    data = CompetitionData(args.data_dir)
    train = labelled(data.train())
    rows = config_folds(train, config.evaluate)[fold].val_rows
    texts = query_texts(train.iloc[rows], config.text)
    texts += misconception_texts(data.misconceptions, config.text)

    exports, export_seconds = {}, {}
    for key, (fmt, quantize) in EXPORTS.items():
        exports[key] = args.exports_dir / name / key
        export_seconds[key] = export(source, exports[key], fmt, quantize, args.data_dir)
        print(f"{name}: exported {key} in {export_seconds[key]:.0f} s", file=sys.stderr)

    # torch's own thread count, as the kit's torch rows run with [retrieval] threads = 0
    bare = SentenceTransformer(str(source), device="cpu", model_kwargs={"dtype": torch.float32})
    bare.max_seq_length = config.retrieval.max_seq_length
    started = time.perf_counter()
    bare.encode(texts, batch_size=config.retrieval.batch_size, normalize_embeddings=True)
    bare_seconds = time.perf_counter() - started
    del bare

    results, reference_e2e = [], None
    for row, key, dtype in runs(exports, cpu_runs_bf16_fast()):
        model = source if key == "source" else exports[key]
        split = stages(model, dtype, args.data_dir, fold)
        seconds = split["tokenise_s"] + split["forward_s"]
        scored_fold = None if held.fine_tuned else fold
        walls = []
        for _ in range(args.repeats):
            report, wall = end_to_end(model, dtype, args.data_dir, scored_fold)
            walls.append(wall)
        wall = statistics.median(walls)
        reference_e2e = reference_e2e or wall
        result = {
            "model": name,
            "row": row,
            "texts": len(texts),
            "encode_s": round(seconds, 1),
            "encode_vs_bare_fp32": round(bare_seconds / seconds, 2),
            "end_to_end_s": round(wall, 1),
            "end_to_end_runs_s": [round(w, 1) for w in walls],
            "end_to_end_vs_torch_fp32": round(reference_e2e / wall, 2),
            map_key(): report[map_key()],
            "seen": report["seen"][map_key()],
            "unseen": report["unseen"][map_key()],
            lb_key(): report[lb_key()],
            "fold": fold,
            "export_s": round(export_seconds[key], 0) if key in export_seconds else None,
            "bare_fp32_encode_s": round(bare_seconds, 1),
            **{stage: value for stage, value in split.items() if stage.endswith("_s")},
            "imported": split["imported"],
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    parser.add_argument("--fine-tuned", type=Path, help="a model folder `eedi train` wrote")
    parser.add_argument("--exports-dir", type=Path, default=Path("/tmp/eedi-cpu-speed"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "cpu-speed.jsonl")
    parser.add_argument(
        "--repeats", type=int, default=1, help="end-to-end runs per row; the median is reported"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    machine = {
        "cpu": cpu_name(),
        "flags": [flag for flag in FLAGS if flag in cpu_flags()],
        "native_bf16": cpu_runs_bf16_fast(),
        "threads": cpu_threads(),  # what the exports' runtimes get
        "torch_threads": torch.get_num_threads(),  # the bare encode's and the torch rows'
        "cores_online": os.cpu_count(),
    }
    print(json.dumps(machine), flush=True)
    models = {"all-MiniLM-L6-v2": default_model_path()}
    if args.fine_tuned:
        models["fine-tuned"] = args.fine_tuned
    with args.results.open("a") as results:
        for name, source in models.items():
            for row in bench_model(name, source, args):
                results.write(json.dumps({**machine, **row}) + "\n")


if __name__ == "__main__":
    main()
