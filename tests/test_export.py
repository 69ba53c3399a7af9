"""Export on a small model trained on real beats: every format in its own runtime,
against the float Keras model; the manifest refuses tampering; the C array compiles."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from pipeline.manifest import ManifestError, load_manifest
from pipeline.train.config import load_config

#: Per format: (max |probability difference| against Keras, minimum decision agreement)
#: on 300 real test beats, and why.
TOLERANCE = {
    "tflite_float32": (1e-5, 1.0),  # same float32 math, different kernels
    "onnx_float32": (1e-5, 1.0),  # the bar for ONNX float
    "tflite_float16": (5e-3, 0.99),  # weights rounded to 11-bit mantissas
    "tflite_dynamic_int8": (0.2, 0.97),  # int8 weights: a beat near a boundary may move
    # int8 weights, activations quantised per call: probabilities stay close (max |diff| 0.08
    # measured), but on a 2-epoch model many beats sit near a boundary and flip (0.943 of
    # 300 on an AMD EPYC with the same seed; 0.97 and more elsewhere): as for tflite_int8,
    # the agreement bound only says "not broken"; the trained model's is validate's budget.
    "onnx_dynamic_int8": (0.2, 0.90),
    "tflite_int8": (1.0, 0.90),  # all int8 on a 2-epoch model: a beat near a boundary
    # flips with confident probabilities, so only the
    # agreement bounds it (measured and recorded)
}


def test_every_format_was_made_and_agrees_with_keras(exported):
    _, out, manifest = exported
    arts = {a["name"]: a for a in manifest["artifacts"]}
    for name, (max_diff, min_agreement) in TOLERANCE.items():
        assert arts[name]["status"] == "ok", arts[name].get("reason")
        assert (out / arts[name]["file"]).is_file()
        assert arts[name]["vs_float"]["max_abs_diff"] <= max_diff, (name, arts[name]["vs_float"])
        assert arts[name]["vs_float"]["agreement"] >= min_agreement, (name, arts[name]["vs_float"])
        assert arts[name]["vs_float"]["n"] == 300
    # 16x8 has no fused-LSTM kernel in the converter: recorded as failed, with the reason.
    assert arts["tflite_int16x8"]["status"] == "failed"
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in arts["tflite_int16x8"]["reason"]


def _run_here(out, entry: dict, windows: dict) -> np.ndarray:
    """An exported file run in its own runtime in this process: probabilities (n, classes)."""
    from pipeline.runtime.backends import LiteRTModel, OnnxModel

    blob = (out / entry["file"]).read_bytes()
    model = LiteRTModel(blob) if entry["format"] == "tflite" else OnnxModel(blob)
    names = [t["name"] for t in entry["inputs"]]
    return np.concatenate(
        [model.predict({k: windows[k][i : i + 1] for k in names}) for i in range(len(windows["signal"]))]
    )


def test_each_format_run_here_gives_keras_probabilities_within_its_bound(exported):
    """Not export's word for it: each file, loaded here, on the held-out windows export kept
    with Keras's probabilities (firmware_check_windows.npz)."""
    _, out, manifest = exported
    arts = {a["name"]: a for a in manifest["artifacts"]}
    with np.load(out / arts["firmware_check_windows"]["file"], allow_pickle=False) as data:
        windows = {k: data[k] for k in ("signal", "side") if k in data.files}
        keras = data["reference_probs"]
    assert len(keras) >= 40
    for name, (max_diff, _) in TOLERANCE.items():
        probs = _run_here(out, arts[name], windows)
        assert probs.shape == keras.shape
        assert np.abs(probs - keras).max() <= max_diff, name


def test_the_chunked_streaming_model_equals_the_whole_window_model(exported):
    _, out, manifest = exported
    arts = {a["name"]: a for a in manifest["artifacts"]}
    stream = manifest["streaming"]
    assert stream["chunk_len"] * stream["chunks_per_window"] == manifest["window"]["n_steps"] == 126
    assert stream["state_sizes"] == load_config("ecg-mitdb").model.lstm_units
    for name in ("stream_tflite_float32", "stream_onnx_float32"):
        assert arts[name]["status"] == "ok" and arts[name]["vs_float"]["n"] == 40
        assert arts[name]["vs_float"]["max_abs_diff"] <= 1e-5, arts[name]["vs_float"]
    # Quantised chunk models: measured and recorded (unrolled graphs take every mode).
    for name in ("stream_tflite_dynamic_int8", "stream_tflite_int8", "stream_tflite_int16x8"):
        assert arts[name]["status"] == "ok"
        assert arts[name]["vs_float"]["agreement"] >= 0.9, arts[name]["vs_float"]
        assert not [op for op in arts[name]["ops"] if "WHILE" in op or "FLEX" in op]
    assert "LSTM" in arts["stream_onnx_float32"]["ops"]
    names = [t["name"] for t in arts["stream_onnx_float32"]["inputs"]]
    assert names == ["chunk", "h_0", "c_0", "side"]


def test_tflite_graphs_are_fused_builtins_and_onnx_has_a_native_lstm(exported):
    _, _, manifest = exported
    arts = {a["name"]: a for a in manifest["artifacts"]}
    for name in ("tflite_float32", "tflite_int8"):
        ops = arts[name]["ops"]
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops
        assert not [op for op in ops if "WHILE" in op or "FLEX" in op]
    assert "LSTM" in arts["onnx_float32"]["ops"] and arts["onnx_float32"]["opset"] == 17
    assert "DynamicQuantizeLSTM" in arts["onnx_dynamic_int8"]["ops"]
    int8_in = {t["name"]: t for t in arts["tflite_int8"]["inputs"]}
    assert int8_in["signal"]["dtype"] == "int8" and int8_in["signal"]["scale"] > 0


def test_onnx_runs_in_onnxruntime_and_checker_passes(exported):
    import onnx

    _, out, _ = exported
    onnx.checker.check_model(onnx.load(str(out / "onnx_float32.onnx")))


def test_manifest_matches_its_json_schema(exported):
    import jsonschema

    from pipeline.manifest import SCHEMA_PATH

    _, _, manifest = exported
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    assert manifest["preprocess"]["fs_in_hz"] / manifest["preprocess"]["decimate"] == 180.0
    assert len(manifest["preprocess"]["sos"]) == 3
    assert manifest["input"]["units"] == "mV" and manifest["input"]["min_fs_hz"] == 100.0
    assert "ECG1" in manifest["input"]["channel_aliases"]["MLII"]
    assert manifest["split"]["train"] == ["208", "223", "119"]
    assert manifest["representative"]["split"] == "train"
    assert manifest["tools"]["tensorflow"] and manifest["tools"]["ai-edge-litert"]


def test_a_tampered_artifact_is_refused_naming_the_file(exported, tmp_path):
    _, out, _ = exported
    copy = tmp_path / "artifacts"
    shutil.copytree(out, copy)
    load_manifest(copy)  # intact: fine
    data = bytearray((copy / "tflite_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "tflite_int8.tflite").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"tflite_int8\.tflite: sha256 .* altered; refusing"):
        load_manifest(copy)
    (copy / "manifest.json").write_text(
        (copy / "manifest.json").read_text().replace("biosig-edge-manifest/2", "biosig-edge-manifest/9")
    )
    with pytest.raises(ManifestError, match="schema is 'biosig-edge-manifest/9'"):
        load_manifest(copy)


def test_the_c_array_compiles_with_warnings_as_errors(exported, tmp_path):
    _, out, manifest = exported
    main = tmp_path / "main.c"
    main.write_text(
        '#include "model_int8.h"\n#include <stdio.h>\n'
        "int main(void) {\n"
        "  if (((unsigned long)model_int8 % 16u) != 0u) return 2;\n"
        '  printf("%u %s %d\\n", MODEL_INT8_LEN, model_int8_class_names[0], '
        "MODEL_INT8_INPUT_SIGNAL_ZERO_POINT);\n"
        "  return 0;\n}\n"
    )
    exe = tmp_path / "a.out"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(out),
            str(main),
            str(out / "model_int8.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    tflite = (out / "tflite_int8.tflite").read_bytes()
    assert int(printed[0]) == len(tflite) and printed[1] == "N"
    signal = next(
        t
        for t in next(a for a in manifest["artifacts"] if a["name"] == "tflite_int8")["inputs"]
        if t["name"] == "signal"
    )
    assert int(printed[2]) == signal["zero_point"]


def test_tflm_runs_the_int8_model_and_reports_its_arena(exported):
    _, _, manifest = exported
    fw = manifest["firmware"]
    assert 1000 < fw["arena_bytes"] < 64 * 1024
    # TFLM and LiteRT have different int8 LSTM kernels (rounding differs): close, not equal.
    assert fw["tflm_vs_litert_int8_agreement"] >= 0.95
    assert fw["checked_windows"] == 300


def test_bad_runs_are_refused_and_nothing_half_written_is_left(exported, tmp_path):
    from pipeline.export.export import ExportError, export_run

    run, _, _ = exported
    with pytest.raises(ExportError, match="no model.keras"):
        export_run(tmp_path, tmp_path / "out")
    with pytest.raises(ExportError, match="already exists"):
        export_run(run, run.parent / "artifacts")
    starved = tmp_path / "starved"
    shutil.copytree(run, starved)
    info = json.loads((starved / "run.json").read_text())
    info["split"]["train"] = []
    (starved / "run.json").write_text(json.dumps(info))
    with pytest.raises(ExportError, match="representative set too small: 0 training windows"):
        export_run(starved, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".*partial*")) and not list(run.parent.glob(".*partial*"))


def test_run_command_refuses_an_unknown_task(capsys):
    from pipeline.cli import main

    # The main job takes minutes; train and export are tested above on their own.
    assert main(["run", "ecg-foo"]) == 2
    assert "no task 'ecg-foo'" in capsys.readouterr().err
