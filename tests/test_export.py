"""`eedi export`: a model folder for OpenVINO or ONNX Runtime that ranks as its source does,
carries what CV and the prior need, int8 calibrated on the competition's texts, and a check
against the source that fails loudly. The runtimes and quantisers are the real ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from eedi_utils import cpu, cpu_embedder
from eedi_utils.cli import main
from eedi_utils.config import KitConfig, RetrievalConfig
from eedi_utils.cpu import cpu_threads
from eedi_utils.cpu_embedder import CpuEmbedder, choose_runtime
from eedi_utils.data import CompetitionData
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.export import run as export_run
from eedi_utils.prior import UnseenPrior, read_prior, write_prior

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")


def fp32() -> KitConfig:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.retrieval.dtype = "float32"
    config.evaluate.folds = 3
    return config


def fine_tuned(tmp_path, tiny_model, val_fold: int = 1) -> str:
    """A copy of the tiny model recording that it held out `val_fold` of 3, with a prior."""
    folder = tmp_path / "fine-tuned"
    shutil.copytree(tiny_model, folder)
    resolved = KitConfig().to_dict()
    resolved["train"]["val_fold"] = val_fold
    resolved["evaluate"]["folds"] = 3
    (folder / "resolved_config.json").write_text(json.dumps(resolved))
    write_prior(folder, UnseenPrior(0.05, frozenset({1, 2, 3})), "test")
    return str(folder)


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_an_fp32_export_encodes_and_ranks_as_its_source(fmt, sample, tiny_model, tmp_path):
    config = fp32()
    config.export.format = fmt
    source = fine_tuned(tmp_path, tiny_model)
    out = tmp_path / "export"
    record = export_run.export_model(source, out, CompetitionData(sample), config)

    assert record["format"] == fmt and record["precision"] == "fp32"
    assert (out / cpu_embedder.MODEL_FILES[fmt]).is_file()
    # What CV and the prior need travels with it: the check scored the fold the source held out
    assert read_prior(out) == read_prior(source)
    assert record["check"]["fold"] == 1 and record["check"]["passed"] is True
    assert record["check"]["export"] == record["check"]["source_fp32"]

    texts = ["What is 3/4 of 12?", "Adds the numerators", "x" * 2000, "Thinks 0.5 > 0.75"]
    exported = load_embedder(out, config.retrieval)
    assert isinstance(exported, CpuEmbedder)
    reference = SentenceTransformer(str(source), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    np.testing.assert_allclose(encode(exported, texts, config.retrieval), reference, atol=1e-5)


def test_predict_with_an_export_writes_the_sources_submission(sample, tiny_model, tmp_path):
    out = tmp_path / "export"
    flags = ["--data-dir", str(sample), "--quiet", "--retrieval-dtype", "float32"]
    assert main(["export", str(tiny_model), "--to", str(out), "--evaluate-folds", "3", *flags]) == 0
    for model, name in ((tiny_model, "source.csv"), (out, "export.csv")):
        assert main(["predict", "--model", str(model), "--out", str(tmp_path / name), *flags]) == 0
    source, exported = ((tmp_path / n).read_text() for n in ("source.csv", "export.csv"))
    assert exported == source


def with_chat_template(folder) -> None:
    """The model as sentence-transformers builds it from a transformers folder whose tokenizer
    has a chat template, then saves it: sentence_bert_config.json records the "message"
    modality, so `encode` renders every text through the template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
    tokenizer.save_pretrained(str(folder))
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        (folder / name).unlink()
    SentenceTransformer(str(folder), device="cpu").save(str(folder))
    recorded = json.loads((folder / "sentence_bert_config.json").read_text())["modality_config"]
    assert "message" in recorded


def with_default_prompt(folder) -> None:
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text())
    config.update(prompts={"query": "query: ", "document": ""}, default_prompt_name="query")
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "change, reason",
    [(with_chat_template, "chat template"), (with_default_prompt, "default prompt 'query'")],
)
def test_a_model_whose_encode_changes_the_text_is_not_exported(
    change, reason, sample, tiny_model, tmp_path
):
    """What sentence-transformers does to a text before tokenising it, an export (raw text
    through tokenizer.json) would not: such a source is refused, and nothing is written."""
    source = tmp_path / "source"
    shutil.copytree(tiny_model, source)
    change(source)
    out = tmp_path / "export"
    with pytest.raises(ValueError, match=reason):
        export_run.export_model(source, out, CompetitionData(sample), fp32())
    assert not out.exists()


def test_batches_of_several_requests_come_back_in_order_and_a_failed_one_raises(
    sample, tiny_model, tmp_path, monkeypatch
):
    """OpenVINO runs a batch per stream (PERFORMANCE_HINT THROUGHPUT, a request per stream taken
    in turn), each `batch_size` texts split over them: the embeddings still land on their texts.
    A batch the runtime rejects raises once no request runs, and the next encoding runs as
    before."""
    config = fp32()
    config.export.check = False
    out = tmp_path / "export"
    export_run.export_model(tiny_model, out, CompetitionData(sample), config)
    exported = CpuEmbedder(out, config.retrieval)
    # Three requests whatever OpenVINO chose here (it may make one stream on a CPU)
    exported._requests = [exported._compiled.create_infer_request() for _ in range(3)]
    texts = [f"What is {n}/{n + 3} of {12 * n}? " * (1 + n % 7) for n in range(40)]
    sizes = []
    tokenised = exported._tokenised

    def counted(texts, positions):
        sizes.append(len(positions))
        return tokenised(texts, positions)

    monkeypatch.setattr(exported, "_tokenised", counted)
    together = exported.encode(texts, batch_size=8 * exported.streams)
    assert sizes[0] == 8  # a batch's share per stream: no more texts in flight than a batch
    np.testing.assert_allclose(exported.encode(texts, batch_size=1), together, atol=1e-5)

    def one_broken(texts, positions):
        found, inputs = tokenised(texts, positions)
        if 7 in positions:
            inputs["attention_mask"] = np.ones((3, inputs["input_ids"].shape[1] + 2), np.int64)
        return found, inputs

    monkeypatch.setattr(exported, "_tokenised", one_broken)
    with pytest.raises(RuntimeError):
        exported.encode(texts, batch_size=1)
    monkeypatch.undo()
    np.testing.assert_allclose(exported.encode(texts, batch_size=4), together, atol=1e-5)


def test_an_export_ignores_retrieval_devices_and_says_so(sample, tiny_model, tmp_path, caplog):
    """One process per listed device would give each runtime every thread: an export runs in
    this process instead, and says so once, not once per fold."""
    from eedi_utils.retrieval import retrieve

    config = fp32()
    config.export.check = False
    out = tmp_path / "export"
    export_run.export_model(tiny_model, out, CompetitionData(sample), config)
    queries, documents = ["What is 3/4 of 12?", "Adds the numerators"], ["a", "b", "c"]
    alone = retrieve(queries, documents, [out], config.retrieval)
    config.retrieval.devices = ["cpu", "cpu"]
    with caplog.at_level("WARNING"):
        assert np.array_equal(retrieve(queries, documents, [out], config.retrieval), alone)
        retrieve(queries, documents, [out], config.retrieval)  # a second CV fold
    assert caplog.text.count("devices ['cpu', 'cpu'] is not used for it") == 1


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_export_tokenises_as_transformers_does(side, tiny_model, tmp_path):
    """tokenizer.json run by `tokenizers` with the recorded padding and truncation gives the
    ids and mask of transformers' `tokenizer(texts, padding=True, truncation=True)`, on either
    side (decoder embedders pad on the left)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(tiny_model), padding_side=side, truncation_side=side
    )
    tokenizer.save_pretrained(str(tmp_path))
    record = {"tokenizer": cpu_embedder.tokenizer_record(tokenizer)}
    ours = cpu_embedder.load_tokenizer(tmp_path, record, max_length=12)
    texts = ["What is 3/4 of 12?", "Adds the numerators and the denominators " * 4, "x"]
    expected = tokenizer(texts, padding=True, truncation=True, max_length=12)
    encodings = ours.encode_batch(texts)
    assert [e.ids for e in encodings] == expected["input_ids"]
    assert [e.attention_mask for e in encodings] == expected["attention_mask"]
    assert len(encodings[1].ids) == 12  # truncated; the others padded to it
    # an export written before export.json held the record: read from tokenizer_config.json
    earlier = cpu_embedder.load_tokenizer(tmp_path, {}, max_length=12).encode_batch(texts)
    assert [e.ids for e in earlier] == expected["input_ids"]
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="export its source again"):
        cpu_embedder.load_tokenizer(tmp_path, record, max_length=12)


def test_special_tokens_in_the_text_are_split_as_the_source_says(tiny_model, tmp_path):
    """`split_special_tokens` lives in tokenizer_config.json, not tokenizer.json: transformers
    sets it on the backend at every call (transformers 5.19, tokenization_utils_tokenizers.py)."""
    from transformers import AutoTokenizer

    text = ["adds [SEP] the numerators"]
    for split in (False, True):
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_model), split_special_tokens=split)
        record = {"tokenizer": cpu_embedder.tokenizer_record(tokenizer)}
        ours = cpu_embedder.load_tokenizer(tiny_model, record, max_length=32)
        assert ours.encode_batch(text)[0].ids == tokenizer(text)["input_ids"][0]


def test_ranking_with_an_export_imports_neither_torch_nor_transformers(
    sample, tiny_model, tmp_path
):
    """Importing torch, transformers and sentence-transformers takes most of a short CPU run
    (about 8-11 s on 2 cores); an export needs none of them."""
    import subprocess
    import sys

    out = tmp_path / "export"
    flags = ["--data-dir", str(sample), "--quiet"]
    folds = ["--evaluate-folds", "3"]
    assert main(["export", str(tiny_model), "--to", str(out), *flags, *folds]) == 0
    script = (
        "import sys; from eedi_utils.cli import main; "
        f"codes = [main(['predict', '--model', {str(out)!r}, '--out', "
        f"{str(tmp_path / 'submission.csv')!r}, *{flags!r}]), "
        f"main(['evaluate', '--model', {str(out)!r}, *{flags + folds!r}])]; "
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'sklearn'} & set(sys.modules); "
        "print(codes, sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0] []"
    assert (tmp_path / "submission.csv").is_file()


@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_int8_is_calibrated_outside_the_checked_fold_and_stays_close(
    fmt, sample, tiny_model, tmp_path, monkeypatch, caplog
):
    config = fp32()
    config.export.format, config.export.quantize = fmt, "int8"
    config.export.tolerance = 1.0  # a random tiny model: the ranking check is the real data's
    out = tmp_path / "int8"
    record = export_run.export_model(
        fine_tuned(tmp_path, tiny_model), out, CompetitionData(sample), config
    )

    assert record["precision"] == "int8"
    assert record["calibration"]["from"].startswith("queries of rows outside fold 1")
    graph = out / cpu_embedder.MODEL_FILES[fmt]
    if fmt == "openvino":
        assert "FakeQuantize" in graph.read_text() or 'element_type="i8"' in graph.read_text()
    else:
        import onnx

        nodes = onnx.load(str(graph)).graph.node
        assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in nodes}
        made_by = {output: node.op_type for node in nodes for output in node.output}
        quantized = [made_by.get(n.input[0]) for n in nodes if n.op_type == "QuantizeLinear"]
        assert "MatMul" not in quantized  # products' outputs stay fp32
    texts = ["What is 3/4 of 12?", "Adds the numerators", "Thinks 0.5 > 0.75"]
    exported = encode(load_embedder(out, config.retrieval), texts, config.retrieval)
    reference = SentenceTransformer(str(tiny_model), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    assert (exported * reference).sum(axis=1).min() > 0.95  # cosine to the fp32 embedding

    # checked on this CPU's int8 instructions: a CPU without them is told so on loading
    made_on = set(json.loads((out / "export.json").read_text())["cpu_flags"])
    assert made_on == cpu_embedder.cpu_flags() & set(cpu_embedder.INT8_FLAGS)
    monkeypatch.setattr(cpu_embedder, "cpu_flags", lambda: set())
    with caplog.at_level("WARNING"):
        load_embedder(out, config.retrieval)
    assert ("which this one lacks" in caplog.text) == bool(made_on)


@pytest.mark.parametrize("quiet", [False, True])
def test_nncf_progress_goes_to_stderr_and_quiet_silences_it(
    quiet, sample, tiny_model, tmp_path, capsys
):
    """NNCF draws its bars with rich on the current stdout, which is the command's JSON."""
    args = ["export", str(tiny_model), "--to", str(tmp_path / "int8"), "--data-dir", str(sample),
            "--quantize", "int8", "--no-export-check"] + ["--quiet"] * quiet  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["precision"] == "int8"
    assert ("Statistics collection" in printed.err) is not quiet


def test_a_failed_check_exits_1_keeps_the_folder_and_warns_on_load(
    sample, tiny_model, tmp_path, monkeypatch, capsys, caplog
):
    real_compare = export_run.compare

    def worse(*args, **kwargs):
        checked = real_compare(*args, **kwargs)
        return {**checked, "drop": 0.02, "passed": False, "summary": "drop +0.0200"}

    monkeypatch.setattr(export_run, "compare", worse)
    out = tmp_path / "export"
    code = main(["export", str(tiny_model), "--to", str(out), "--data-dir", str(sample),
                 "--quiet", "--evaluate-folds", "3"])  # fmt: skip
    assert code == 1
    printed = capsys.readouterr()
    assert "export check failed" in printed.err
    assert json.loads(printed.out)["check"]["passed"] is False
    assert json.loads((out / "export.json").read_text())["check"]["passed"] is False
    with caplog.at_level("WARNING"):
        load_embedder(out, fp32().retrieval)
    assert "failed its export check" in caplog.text


def test_a_non_empty_folder_is_refused_and_overwrite_replaces_only_an_export(
    sample, tiny_model, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["export", str(tiny_model), "--data-dir", str(sample), "--quiet", "--no-export-check"]
    assert main([*args, "--to", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*args, "--to", str(out), "--overwrite"]) == 2
    assert (out / "notes.txt").read_text() == "mine"
    export = tmp_path / "export"
    assert main([*args, "--to", str(export)]) == 0
    assert main([*args, "--to", str(export), "--overwrite", "--format", "onnx"]) == 0
    assert json.loads((export / "export.json").read_text())["format"] == "onnx"
    assert not (export / cpu_embedder.MODEL_FILES["openvino"]).exists()


def test_a_failed_export_leaves_the_earlier_one_in_place(sample, tiny_model, tmp_path, monkeypatch):
    config = fp32()
    config.export.check = False
    out = tmp_path / "export"
    export_run.export_model(tiny_model, out, CompetitionData(sample), config)
    before = (out / "openvino_model.xml").read_bytes()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_run, "_save_graph", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run.export_model(tiny_model, out, CompetitionData(sample), config, overwrite=True)
    assert (out / "openvino_model.xml").read_bytes() == before


def test_torch_commands_refuse_an_export_naming_its_source(tiny_model, tmp_path, sample):
    from eedi_utils.merge import merge_models
    from eedi_utils.train.retriever.model import build_model

    config = fp32()
    config.export.check = False
    out = tmp_path / "export"
    export_run.export_model(tiny_model, out, CompetitionData(sample), config)
    with pytest.raises(ValueError, match=f"merging needs {tiny_model}"):
        merge_models([out], tmp_path / "merged")
    config.train.base_model = str(out)
    with pytest.raises(ValueError, match=f"training needs {tiny_model}"):
        build_model(config.train, 128, "cpu")


def test_an_export_is_not_exported_again(tiny_model, tmp_path, sample):
    config = fp32()
    config.export.check = False
    out = export_run.export_model(tiny_model, tmp_path / "a", CompetitionData(sample), config)
    assert out["check"] is None
    with pytest.raises(ValueError, match="already an export"):
        export_run.export_model(tmp_path / "a", tmp_path / "b", CompetitionData(sample), config)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "f32")])
def test_openvino_computes_in_bf16_only_where_the_cpu_runs_it_natively(
    native, expected, monkeypatch
):
    monkeypatch.setattr(cpu_embedder, "cpu_runs_bf16_fast", lambda: native)
    runtime = choose_runtime({"format": "openvino", "precision": "int8"}, RetrievalConfig())
    assert runtime.compute == expected
    forced = choose_runtime(
        {"format": "openvino", "precision": "int8"}, RetrievalConfig(dtype="float32")
    )
    assert forced.compute == "f32"


def test_onnx_runs_fp32_and_refuses_half_precision() -> None:
    assert choose_runtime({"format": "onnx", "precision": "fp32"}, RetrievalConfig()).compute == (
        "fp32"
    )
    with pytest.raises(ValueError, match="ONNX Runtime's CPU provider runs fp32"):
        choose_runtime({"format": "onnx", "precision": "fp32"}, RetrievalConfig(dtype="bfloat16"))


def test_threads_are_the_cpus_this_process_may_use(monkeypatch) -> None:
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 2, 5})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads() == 3
    assert cpu_threads(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's setting per process
    assert cpu_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    runtime = choose_runtime({"format": "onnx", "precision": "int8"}, RetrievalConfig())
    assert runtime.threads == 3 and "3 threads" in runtime.describe()


def test_bf16_counts_as_native_only_with_avx512_bf16_or_amx(monkeypatch) -> None:
    """Any AVX-512 is not enough (oneDNN's `_is_mkldnn_bf16_supported` and OpenVINO's
    `hasBF16HardwareSupport` say True from `avx512_core` on, where bf16 is emulated): the
    flags torch.cpu asks decide, read from /proc/cpuinfo so an export never imports torch."""
    import torch

    from eedi_utils import devices

    for flags, native in (
        ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, False),  # Skylake/Cascade Lake
        ({"avx2", "avx512f", "avx512_bf16"}, True),  # Cooper Lake, Zen 4
        ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, True),  # Sapphire Rapids
    ):
        monkeypatch.setattr(cpu, "cpu_flags", lambda f=flags: f)
        assert cpu.cpu_runs_bf16_fast() is native
        assert devices.resolve_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    monkeypatch.undo()
    if cpu.cpu_flags():  # this machine's answer is torch's own
        asked = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        assert cpu.cpu_runs_bf16_fast() is asked


def test_export_takes_threads_for_its_check_and_its_model_as_the_positional_only() -> None:
    from eedi_utils.cli import flag_names

    flags = {flag for names in flag_names("export").values() for flag in names}
    assert "--retrieval-threads" in flags  # the check ranks with the export's runtime
    assert "--model" not in flags  # MODEL is the positional; [retrieval] models is not read
