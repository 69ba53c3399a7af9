"""The C runtime (firmware_export/runtime/bse_lstm.c) in layers, without TensorFlow, data
or a trained model: synthetic weights, generated as C, compiled by the host gcc into the
shared library a CPU backend loads, called through ctypes. Like TFLite Micro's kernel
tests: activations -> one LSTM step (h and c) -> a whole window -> the head -> the filter,
per precision, each tolerance with its reason; then every model shape the generator
accepts, and a check that none is missing.

References: float32 against the float64 numpy reference (pipeline/runtime/reference.py)
and the device's preprocessing chain (pipeline/preprocess); int8 against the same scheme
written in numpy float32 (firmware_export/int8_model.py), bit for bit.

Needs gcc; about ten seconds (32 small libraries are compiled).
"""

from __future__ import annotations

import ctypes
import itertools
import platform
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tools import needs

from firmware_export import build, c_model
from firmware_export.int8_model import Int8Model
from pipeline.runtime.c_backend import CLibrary
from pipeline.runtime.reference import NumpyLSTM, lstm_sequence

pytestmark = pytest.mark.fast

#: (LSTM layers, side features, filter, precision): every combination the generator accepts.
CASES = list(itertools.product((1, 2, 3, 4), (False, True), (False, True), c_model.PRECISIONS))
UNITS = (12, 7, 9, 5)  # 4U = 48, 28, 36, 20: whole blocks of 8 outputs and remainders
N_CHANNELS, N_SIDE, N_DENSE, N_STEPS = 3, 4, 10, 30
CLASSES = list("abcde")
FS_HZ = 360.0


def synthetic_spec(layers: int, side: bool, filtered: bool, seed: int = 0) -> c_model.CModelSpec:
    """Random weights of the scale a trained LSTM has (gate pre-activations of a few units,
    forget bias +1), and the ECG task's filter (band-pass 0.5-40 Hz, 60 Hz notch, decimate 2)."""
    from pipeline.preprocess import PreprocessSpec

    rng = np.random.default_rng(seed)
    lstm, n_in = [], N_CHANNELS
    for u in UNITS[:layers]:
        bias = rng.normal(0, 0.3, 4 * u)
        bias[u : 2 * u] += 1.0
        lstm.append((rng.normal(0, 0.6, (n_in, 4 * u)), rng.normal(0, 0.4, (u, 4 * u)), bias))
        n_in = u
    n_side = N_SIDE if side else 0
    dense = (rng.normal(0, 0.5, (n_in + n_side, N_DENSE)), rng.normal(0, 0.1, N_DENSE))
    head = (rng.normal(0, 0.6, (N_DENSE, len(CLASSES))), rng.normal(0, 0.1, len(CLASSES)))
    as32 = [tuple(np.asarray(a, np.float32) for a in layer) for layer in lstm]
    spec = c_model.CModelSpec(
        as32,
        tuple(np.asarray(a, np.float32) for a in dense),
        tuple(np.asarray(a, np.float32) for a in head),
        N_CHANNELS,
        n_side,
        CLASSES,
        N_STEPS,
    )
    pre = (PreprocessSpec(FS_HZ, 2, 0.5, 40.0, 60.0) if filtered else PreprocessSpec(FS_HZ, 1, gain=0.5)).to_dict()
    return c_model.with_preprocessing(spec, pre)


def reference_weights(spec: c_model.CModelSpec) -> dict:
    out = {
        f"lstm_{i}_{name}": a
        for i, layer in enumerate(spec.lstm)
        for name, a in zip(("kernel", "recurrent", "bias"), layer)
    }
    out.update(dense_kernel=spec.dense[0], dense_bias=spec.dense[1], probs_kernel=spec.head[0], probs_bias=spec.head[1])
    return out


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """{case: (CLibrary, spec)} for every case, compiled in parallel."""
    needs("gcc")
    root = tmp_path_factory.mktemp("c_runtime")

    def build_case(case):
        layers, side, filtered, precision = case
        folder = root / f"l{layers}_s{int(side)}_f{int(filtered)}"
        folder.mkdir(exist_ok=True)
        spec = synthetic_spec(layers, side, filtered)
        src, _ = c_model.generate(spec, folder, "m", precision)
        return case, (CLibrary(build.build_shared_library(src, folder)["path"], prefix="m"), spec)

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(build_case, CASES))


def windows(n: int, seed: int = 1, n_steps: int = N_STEPS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, n_steps, N_CHANNELS)).astype(np.float32), rng.normal(0, 1, (n, N_SIDE)).astype(
        np.float32
    )


def random_state(units, seed: int = 2):
    """A state from the middle of a window: |h| < 1, c of a few units."""
    rng = np.random.default_rng(seed)
    return (
        [np.tanh(rng.normal(0, 1, (1, u))).astype(np.float32) for u in units],
        [rng.normal(0, 1.5, (1, u)).astype(np.float32) for u in units],
    )


def step(lib, chunk, h, c, side=None):
    """lib.step on one window: chunk (L, C), state lists -> probs (K,), h list, c list."""
    feed = {"chunk": chunk[None]}
    for i in range(len(h)):
        feed[f"h_{i}"], feed[f"c_{i}"] = h[i], c[i]
    if side is not None:
        feed["side"] = side[None]
    probs, states = lib.step(feed)
    return probs[0], states[0::2], states[1::2]


# ------------------------------------------------------------------ activations


class _Table(ctypes.Structure):
    _fields_ = [
        ("values", ctypes.POINTER(ctypes.c_float)),
        ("n", ctypes.c_int32),
        ("x_min", ctypes.c_float),
        ("x_max", ctypes.c_float),
        ("per_unit", ctypes.c_float),
    ]


@pytest.fixture(scope="module")
def activations(libraries):
    """The runtime's activation functions, vectorised over a numpy array through ctypes."""
    lib = libraries[(1, False, False, "float32")][0].lib
    table = c_model.sigmoid_table()
    r = c_model.SIGMOID_TABLE_RANGE
    t = _Table(table.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), len(table), -r, r, (len(table) - 1) / (2 * r))
    fns = {}
    for name in ("expf", "sigmoidf", "tanhf"):
        f = getattr(lib, f"bse_lstm_{name}")
        f.argtypes, f.restype = [ctypes.c_float], ctypes.c_float
        fns[name] = f
    for name in ("sigmoid_table", "tanh_table"):
        f = getattr(lib, f"bse_lstm_{name}")
        f.argtypes, f.restype = [ctypes.POINTER(_Table), ctypes.c_float], ctypes.c_float
        fns[name] = (lambda g: lambda x: g(ctypes.byref(t), x))(f)
    keep = (table, t)  # alive while used
    return lambda name, x: np.array([fns[name](float(v)) for v in x], np.float64), keep


def test_expf_is_within_one_ulp_of_exp(activations):
    run, _ = activations
    x = np.linspace(-87.0, 88.0, 60001, dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    # Cephes' claim for its expf on this range; the polynomial is its minimax fit.
    assert (np.abs(run("expf", x) - want) / ulp).max() <= 1.0


def test_exact_sigmoid_and_tanh_are_within_2e_7(activations):
    run, _ = activations
    x = np.linspace(-20.0, 20.0, 60001, dtype=np.float32)
    x64 = x.astype(np.float64)
    # One ulp of expf, one rounding of the division and the add: a few 1e-8 on values < 1.
    assert np.abs(run("sigmoidf", x) - 1 / (1 + np.exp(-x64))).max() <= 2e-7
    # Cephes' tanhf: the odd polynomial near 0 keeps relative accuracy where 1 - 2/(e^2x+1)
    # would cancel; within 2 ulp of values < 1.
    y = run("tanhf", x)
    assert np.abs(y - np.tanh(x64)).max() <= 2e-7
    small = np.abs(x64) < 0.625
    assert (np.abs(y - np.tanh(x64))[small] / np.spacing(np.abs(np.tanh(x64[small])).astype(np.float32))).max() <= 2


def test_sigmoid_table_meets_the_error_it_states(activations):
    run, _ = activations
    r = c_model.SIGMOID_TABLE_RANGE
    x = np.linspace(-3 * r, 3 * r, 60001, dtype=np.float32)
    x64 = x.astype(np.float64)
    inside = np.abs(x64) < r
    err = np.abs(run("sigmoid_table", x) - 1 / (1 + np.exp(-x64)))
    assert err[inside].max() <= c_model.SIGMOID_TABLE_ERROR  # interpolation: h^2/8 max|sigmoid''|
    assert err[~inside].max() <= c_model.SIGMOID_CLAMP_ERROR  # the clamp: sigmoid(-8)
    terr = np.abs(run("tanh_table", x) - np.tanh(x64))  # 2 sigmoid(2x) - 1: twice both
    assert terr[np.abs(x64) < r / 2].max() <= 2 * c_model.SIGMOID_TABLE_ERROR
    assert terr.max() <= 2 * c_model.SIGMOID_CLAMP_ERROR


# ------------------------------------------------------------------ one step, a window, the head


@pytest.mark.parametrize("layers", [1, 2])
def test_one_step_gives_the_float_references_h_and_c(libraries, layers):
    lib, spec = libraries[(layers, True, True, "float32")]
    x, side = windows(1)
    h0, c0 = random_state(spec.units)
    _, h, c = step(lib, x[0, :1], h0, c0, side[0])
    v = x[0, :1]
    for k, (kernel, recurrent, bias) in enumerate(spec.lstm):
        _, want_h, want_c = lstm_sequence(v, kernel, recurrent, bias, h0[k][0], c0[k][0])
        # float32 sums of at most 19 products of order 1 (rounding ~1e-7 each) through
        # activations within 2e-7, from the same state: 1e-6.
        np.testing.assert_allclose(c[k][0], want_c, atol=1e-6, err_msg=f"c of layer {k}")
        np.testing.assert_allclose(h[k][0], want_h, atol=1e-6, err_msg=f"h of layer {k}")
        v = h[k]  # the next layer sees this layer's C output


@pytest.mark.parametrize("layers", [1, 2])
def test_one_int8_step_equals_the_int8_scheme_in_numpy_bit_for_bit(libraries, layers):
    lib, spec = libraries[(layers, True, True, "int8")]
    model = Int8Model(spec)
    x, side = windows(4)
    for i in range(len(x)):
        h0, c0 = random_state(spec.units, seed=10 + i)
        _, h, c = step(lib, x[i, :1], h0, c0, side[i])
        v = x[i, :1]
        for k in range(layers):
            want_h, want_c = model.layer_step(k, v, h0[k], c0[k])
            # The same float32 operations in the same order, integer sums exact: no tolerance.
            assert np.array_equal(c[k].view(np.uint32), want_c.view(np.uint32)), f"c of layer {k}"
            assert np.array_equal(h[k].view(np.uint32), want_h.view(np.uint32)), f"h of layer {k}"
            v = h[k]


@pytest.mark.parametrize("layers", [1, 2])
def test_a_whole_window_keeps_h_and_c_with_the_float_reference(libraries, layers):
    lib, spec = libraries[(layers, False, True, "float32")]
    x, _ = windows(3)
    for i in range(len(x)):
        zeros = [np.zeros((1, u), np.float32) for u in spec.units]
        _, h, c = step(lib, x[i], zeros, zeros)
        seq = x[i]
        for k, (kernel, recurrent, bias) in enumerate(spec.lstm):
            seq, want_h, want_c = lstm_sequence(
                seq, kernel, recurrent, bias, np.zeros(spec.units[k]), np.zeros(spec.units[k])
            )
            # 30 steps of the one-step error (1e-6), carried by a recurrence whose forget
            # gate (< 1) damps it: 1e-5.
            np.testing.assert_allclose(c[k][0], want_c, atol=1e-5, err_msg=f"c of layer {k}, window {i}")
            np.testing.assert_allclose(h[k][0], want_h, atol=1e-5, err_msg=f"h of layer {k}, window {i}")


@pytest.mark.parametrize("layers", [1, 2])
def test_a_whole_int8_window_equals_the_int8_scheme_in_numpy_bit_for_bit(libraries, layers):
    lib, spec = libraries[(layers, False, True, "int8")]
    x, _ = windows(8)
    h, c = Int8Model(spec).run(x)
    for i in range(len(x)):
        zeros = [np.zeros((1, u), np.float32) for u in spec.units]
        _, got_h, got_c = step(lib, x[i], zeros, zeros)
        for k in range(layers):
            assert np.array_equal(got_c[k][0].view(np.uint32), c[k][i].view(np.uint32)), (i, k)
            assert np.array_equal(got_h[k][0].view(np.uint32), h[k][i].view(np.uint32)), (i, k)


@pytest.mark.parametrize("precision", c_model.PRECISIONS)
def test_the_head_alone_gives_the_references_probabilities(libraries, precision):
    lib, spec = libraries[(2, True, False, precision)]
    _, side = windows(6)
    for i in range(len(side)):
        h, c = random_state(spec.units, seed=20 + i)
        probs, h_after, _ = step(lib, np.zeros((0, N_CHANNELS), np.float32), h, c, side[i])
        assert all(np.array_equal(a, b) for a, b in zip(h_after, h))  # no step: the state is unchanged
        if precision == "float32":
            want = NumpyLSTM(reference_weights(spec))._head(h[-1][0].astype(np.float64), side[i])
            # Two float32 dense layers of 11 and 10 products and one expf (1 ulp): 1e-6.
            np.testing.assert_allclose(probs, want, atol=1e-6)
        else:
            want = Int8Model(spec).head(h[-1], side[i : i + 1])[0]
            assert np.array_equal(probs.view(np.uint32), want.view(np.uint32))


# ------------------------------------------------------------------ the filter


def ecg_like(seconds: float, seed: int = 3) -> np.ndarray:
    """Baseline wander, a 1.2 Hz beat-like pulse train, mains hum and noise, in mV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS_HZ)) / FS_HZ
    pulses = np.exp(-(((t % 0.83) - 0.3) ** 2) / 2e-4)
    return (
        0.4 * np.sin(2 * np.pi * 0.2 * t)
        + pulses
        + 0.05 * np.sin(2 * np.pi * 60 * t)
        + 0.02 * rng.normal(size=len(t))
        + 1.5
    ).astype(np.float32)


@pytest.mark.parametrize("filtered", [True, False])
def test_the_filter_equals_the_device_preprocessing_chain(libraries, filtered):
    from pipeline.preprocess import Preprocessor, PreprocessSpec

    lib, spec = libraries[(1, False, filtered, "float32")]
    pre = PreprocessSpec(FS_HZ, 2, 0.5, 40.0, 60.0) if filtered else PreprocessSpec(FS_HZ, 1, gain=0.5)
    x = ecg_like(20.0)
    want = Preprocessor(pre, 1, sos=spec.sos).process(x[:, None].astype(np.float64))[:, 0]
    got = lib.filter(x)
    assert len(got) == len(want) == -(-len(x) // pre.decimate)
    if filtered:
        # float32 coefficients and state against scipy's float64: the 0.5 Hz high-pass has its
        # double pole 0.9913 from the origin, so its gain near DC is sum(b) / sum(a) with
        # sum(a) ~ (1 - 0.9913)^2 ~ 8e-5; coefficient rounding (6e-8) moves it by ~1e-3 of
        # the 1.5 mV offset while the state settles (the same bound as on real ECG,
        # tests/test_firmware_c.py).
        assert np.abs(got - want).max() <= 1e-3 * np.ptp(want)
    else:
        assert np.array_equal(got, want)  # only decimation (none here) and the gain


@pytest.fixture(scope="module")
def normalised(tmp_path_factory):
    """A library whose filter ends in the running RMS normalisation (Bonn's front end)."""
    from pipeline.preprocess import PreprocessSpec

    needs("gcc")
    folder = tmp_path_factory.mktemp("c_norm")
    pre = PreprocessSpec(FS_HZ, 2, 0.5, 40.0, 60.0, running_norm_s=2.0)
    spec = c_model.with_preprocessing(synthetic_spec(1, False, False), pre.to_dict())
    src, _ = c_model.generate(spec, folder, "m", "float32")
    return CLibrary(build.build_shared_library(src, folder)["path"], prefix="m"), spec, pre


def test_the_running_normalisation_in_c_equals_the_device_chain(normalised):
    from pipeline.preprocess import Preprocessor

    lib, spec, pre = normalised
    x = ecg_like(20.0)
    want = Preprocessor(pre, 1, sos=spec.sos).process(x[:, None].astype(np.float64))[:, 0]
    got = lib.filter(x)
    assert len(got) == len(want)
    # after the first samples (where the normaliser divides the filter's steady-state
    # rounding by its own size) float32 C and float64 numpy agree to the filter's error
    np.testing.assert_allclose(got[50:], want[50:], atol=2e-3 * np.abs(want).max())
    assert 0.5 < np.sqrt(np.mean(got[len(got) // 2 :] ** 2)) < 2.0  # unit RMS, not mV
    for scale in (0.5, 2.0):  # the amplifier's scale does not reach the model
        np.testing.assert_allclose(lib.filter(x * np.float32(scale))[50:], got[50:], atol=1e-4)
    rng = np.random.default_rng(5)
    sizes = list(rng.integers(1, 500, 40))
    sizes.append(len(x) - sum(sizes))
    assert np.array_equal(lib.filter(x, sizes).view(np.uint32), got.view(np.uint32))


def test_any_chunking_of_the_filter_gives_the_same_bits(libraries):
    lib, _ = libraries[(1, False, True, "float32")]
    x = ecg_like(5.0)
    whole = lib.filter(x)
    rng = np.random.default_rng(4)
    for _ in range(5):
        sizes = []
        while sum(sizes) < len(x):
            sizes.append(int(min(rng.choice([1, 2, 7, 100, 999]), len(x) - sum(sizes))))
        assert np.array_equal(lib.filter(x, sizes).view(np.uint32), whole.view(np.uint32))


# ------------------------------------------------------------------ every accepted shape


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c[0]}lstm-{'side' if c[1] else 'noside'}-{'filter' if c[2] else 'nofilter'}-{c[3]}"
)
def test_every_accepted_shape_classifies_windows_like_its_reference(libraries, case):
    layers, side_on, filtered, precision = case
    lib, spec = libraries[case]
    assert lib.units == list(UNITS[:layers]) and lib.n_side == (N_SIDE if side_on else 0)
    assert lib.info["filter_sections"] == len(spec.sos) and (len(spec.sos) > 0) == filtered
    x, side = windows(16, seed=30)
    inputs = {"signal": x, "side": side[:, : lib.n_side]}
    probs = lib.predict(inputs)
    if precision == "float32":
        # float32 over 30 steps against float64 (see the whole-window test): 1e-5.
        np.testing.assert_allclose(probs, NumpyLSTM(reference_weights(spec)).predict(inputs), atol=1e-5)
    else:
        want = Int8Model(spec).predict(x, inputs["side"])
        assert np.array_equal(probs.view(np.uint32), want.view(np.uint32))
    # Chunk plus state, the EEG session's path, in uneven chunks: the same bits.
    h = [np.zeros((1, u), np.float32) for u in spec.units]
    c = [np.zeros((1, u), np.float32) for u in spec.units]
    for a, b in ((0, 1), (1, 8), (8, 8), (8, N_STEPS)):
        chunk_probs, h, c = step(lib, x[0, a:b], h, c, inputs["side"][0] if lib.n_side else None)
    assert np.array_equal(chunk_probs.view(np.uint32), probs[0].view(np.uint32))


@pytest.mark.parametrize("precision", c_model.PRECISIONS)
def test_the_scalar_and_the_vector_loops_give_the_same_bits(libraries, tmp_path, precision):
    """The runtime's forms of its float loops, all compiled here: eight sums in registers
    (a scalar core such as the Cortex-M4), 4-lane vectors (the baseline library: SSE2 or
    NEON) and, where this CPU has AVX2, 8-lane vectors (the x86-64-v3 library)."""
    from pipeline.runtime.c_backend import cpu_features

    lib, spec = libraries[(2, True, True, precision)]
    src, _ = c_model.generate(spec, tmp_path, "m", precision)
    (tmp_path / "scalar").mkdir()
    builds = {
        "scalar": build.build_shared_library(src, tmp_path / "scalar", extra_flags=("-DBSE_LSTM_VECTOR_LOOPS=0",))
    }
    x86_v3 = build.CPU_LIBRARIES["x86_64-v3"]
    if x86_v3[0] == platform.machine() and set(x86_v3[2]) <= cpu_features():
        builds["8 lanes"] = build.build_shared_library(src, tmp_path, "x86_64-v3")
    x, side = windows(16, seed=40)
    inputs = {"signal": x, "side": side}
    want = lib.predict(inputs).view(np.uint32)
    for name, b in builds.items():
        assert np.array_equal(CLibrary(b["path"], prefix="m").predict(inputs).view(np.uint32), want), name


def test_every_shape_the_generator_accepts_has_a_case():
    accepted = set(itertools.product(*c_model.ACCEPTED.values()))
    assert accepted == set(CASES), sorted(accepted ^ set(CASES))


def test_the_generator_refuses_a_fifth_layer_and_non_finite_weights(tmp_path):
    spec = synthetic_spec(4, False, False)
    deep = c_model.CModelSpec(spec.lstm + [spec.lstm[-1]], spec.dense, spec.head, N_CHANNELS, 0, CLASSES, N_STEPS)
    with pytest.raises(c_model.UnsupportedModelError, match="5 LSTM layers"):
        c_model.generate(deep, tmp_path)
    spec.lstm[0][0][0, 0] = np.nan
    with pytest.raises(c_model.UnsupportedModelError, match="not finite"):
        c_model.generate(spec, tmp_path)
