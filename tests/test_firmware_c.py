"""Generated C99 inference: host gcc against the numpy float reference on real beats; the
same sources on a Cortex-M4 (QEMU mps2-an386) against the host build, bit for bit; sizes;
models the generator must refuse.

Needs gcc, gcc-arm-none-eabi + libnewlib-arm-none-eabi and qemu-system-arm (``.ci/run``
installs them). Without one, a test skips and says which; under CI=true it fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tools import needs

from firmware_export import build
from firmware_export.c_model import UnsupportedModelError, spec_from_keras
from pipeline.runtime.reference import NumpyLSTM


@pytest.fixture(scope="module")
def real_beats(exported):
    """Every beat window of DS2 records 100 and 232 as the model sees it, with the float
    reference's probabilities: (signal (n, 126, 4), side (n, 6), reference probs (n, 4))."""
    from pipeline.train.config import config_from_dict
    from pipeline.train.data import load_windows
    from pipeline.window.side import Standardiser

    run, artifacts, manifest = exported
    info = json.loads((run / "run.json").read_text())
    cfg = config_from_dict(info["config"])
    table = load_windows(cfg, ["100", "232"])
    x, s, _ = table.take(["100", "232"], manifest["classes"])
    side = Standardiser(np.asarray(info["side_mean"]), np.asarray(info["side_std"]))(s).astype(np.float32)
    ref = NumpyLSTM.from_file(artifacts / "reference_float32.npz").predict({"signal": x, "side": side})
    return x.astype(np.float32), side, ref


def test_host_float_build_equals_the_numpy_reference(exported, real_beats, tmp_path):
    needs("gcc")
    _, artifacts, _ = exported
    x, side, ref = real_beats
    assert len(x) > 3000
    exe = build.build_host_driver(artifacts / "bse_float32.c", tmp_path)
    probs = build.host_classify(exe, x, side, ref.shape[1])
    assert np.abs(probs - ref).max() <= 1e-5
    assert (probs.argmax(1) == ref.argmax(1)).all()


def test_host_int8_build_follows_float_decisions(exported, real_beats, tmp_path):
    needs("gcc")
    _, artifacts, manifest = exported
    x, side, ref = real_beats
    exe = build.build_host_driver(artifacts / "bse_int8.c", tmp_path)
    probs = build.host_classify(exe, x, side, ref.shape[1])
    agreement = float((probs.argmax(1) == ref.argmax(1)).mean())
    assert agreement >= 0.995, agreement
    recorded = next(a for a in manifest["artifacts"] if a["name"] == "c_int8")["vs_float"]["agreement"]
    assert recorded >= 0.98  # export's own check, on its 300 stratified windows


def test_generated_filter_matches_the_python_chain(exported, tmp_path):
    needs("gcc")
    from pipeline.preprocess import Preprocessor, PreprocessSpec
    from pipeline.read.mitdb import read_mitdb

    _, artifacts, manifest = exported
    rec = read_mitdb("100", channels=manifest["input"]["channels"])
    pre = manifest["preprocess"]
    exe = build.build_host_driver(artifacts / "bse_float32.c", tmp_path)
    for ch in range(rec.signal.shape[1]):
        x = rec.signal[: 360 * 60, ch]
        want = Preprocessor(PreprocessSpec.from_dict(pre), 1, sos=np.asarray(pre["sos"])).process(x[:, None])[:, 0]
        got = build.host_filter(exe, x)
        assert len(got) == len(want) == len(x) // pre["decimate"]
        # float32 state against scipy's float64: a high-pass pole near the unit circle
        # leaves ~1e-4 of the signal's range.
        assert np.abs(got - want).max() <= 1e-3 * np.ptp(want)


def test_cortex_m4_prints_the_host_builds_decisions_bit_for_bit(exported, tmp_path):
    needs("gcc", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
    _, artifacts, manifest = exported
    with np.load(artifacts / "firmware_check_windows.npz") as data:
        signal, side, ref = data["signal"][:16], data["side"][:16], data["reference_probs"][:16]
    for precision in ("float32", "int8"):
        result = build.cortex_m4_check(artifacts / f"bse_{precision}.c", signal, side, len(manifest["classes"]))
        assert result["windows"] == 16
        assert result["decisions_equal_host"] and result["bits_equal_host"], precision
        if precision == "float32":
            assert np.abs(result["m4"]["probs"] - ref).max() <= 1e-5
        # The ECG model's budget: flash <= 64 KB, RAM <= 16 KB and at most half of TFLM's arena.
        assert result["flash_bytes"] <= 64 * 1024
        assert result["ram_with_stack_bytes"] <= 16 * 1024
        assert result["ram_with_stack_bytes"] <= manifest["firmware"]["arena_bytes"] / 2
        assert 1e4 < result["instructions_mean"] < 5e6


def test_generator_refuses_what_it_cannot_express():
    from pipeline.train.model import keras

    k = keras()

    def model(*layers):
        x = inp = k.Input((20, 2), name="signal")
        for layer in layers:
            x = layer(x)
        return k.Model(inp, x)

    with pytest.raises(UnsupportedModelError, match="'gru_0' \\(GRU\\)"):
        spec_from_keras(model(k.layers.GRU(4, name="gru_0"), k.layers.Dense(3, activation="softmax")), 20, list("abc"))
    with pytest.raises(UnsupportedModelError, match="'lstm_0'.*activation relu"):
        spec_from_keras(
            model(
                k.layers.LSTM(4, activation="relu", name="lstm_0"),
                k.layers.Dense(8, activation="relu"),
                k.layers.Dense(3, activation="softmax"),
            ),
            20,
            list("abc"),
        )
    with pytest.raises(UnsupportedModelError, match="'head'.*activation 'sigmoid'"):
        spec_from_keras(
            model(
                k.layers.LSTM(4),
                k.layers.Dense(8, activation="relu"),
                k.layers.Dense(3, activation="sigmoid", name="head"),
            ),
            20,
            list("abc"),
        )
    with pytest.raises(UnsupportedModelError, match="'back'.*forward direction"):
        spec_from_keras(
            model(
                k.layers.LSTM(4, go_backwards=True, name="back"),
                k.layers.Dense(8, activation="relu"),
                k.layers.Dense(3, activation="softmax"),
            ),
            20,
            list("abc"),
        )
    ok = spec_from_keras(
        model(k.layers.LSTM(4), k.layers.Dense(8, activation="relu"), k.layers.Dense(3, activation="softmax")),
        20,
        list("abc"),
    )
    assert ok.units == [4] and ok.n_side == 0


def test_export_lists_the_generated_sources_and_the_runtime(exported):
    _, artifacts, manifest = exported
    by = {a["name"]: a for a in manifest["artifacts"]}
    for name in (
        "c_float32",
        "c_int8",
        "bse_float32.h",
        "bse_int8.h",
        "bse_lstm.c",
        "bse_lstm.h",
        "firmware_check_windows",
    ):
        assert by[name]["status"] == "ok" and (Path(artifacts) / by[name]["file"]).is_file()
    runtime = (artifacts / "bse_lstm.c").read_text()
    assert runtime == (Path(build.RUNTIME_DIR) / "bse_lstm.c").read_text()  # the runtime as written
    assert "malloc" not in runtime and "<math.h>" not in runtime  # no heap, no libm
    for name in ("bse_float32.c", "bse_int8.c"):
        # Generated files hold data, sizes and the prefix's one-line calls into the runtime:
        # no loop, no arithmetic of their own.
        source = (artifacts / name).read_text()
        assert not re.search(r"\b(for|while)\s*\(", source) and "bse_lstm_push(" in source, name
