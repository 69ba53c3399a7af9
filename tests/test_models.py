"""Models that hold on new patients, reproducibly: configs checked at load, record-level
CV inside DS1 (folds never share a record, never touch DS2), deterministic training,
decision offsets carried in the output bias."""

import json
import platform
from collections import Counter

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.read.cards import load_card
from pipeline.read.splits import Split, SplitError, check_folds, record_folds
from pipeline.train.config import load_config

# --- configs checked at load ----------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"kind": "ecg-beat"}, r"kind: must be one of \('ecg-beats', 'eeg-windows'\), not 'ecg-beat'"),
        ({"window": {"normalise": "zcore"}}, r"window.normalise: must be one of .*not 'zcore'"),
        ({"window": {"rr_features": ["pre_rr_typo"]}}, r"window.rr_features: unknown \['pre_rr_typo'\]"),
        ({"classes": []}, "classes: must name at least one class"),
        ({"classes": ["N", "S", "V", "S"]}, r"classes: \['S'\] named more than once"),
        ({"train": {"class_weight_scale": [1.0, 0.3]}}, r"train.class_weight_scale: 2 values for 4 classes"),
        ({"preprocess": {"lowpass_hz": None}}, r"preprocess: decimating 360.0 Hz by 2 needs a low-pass below 90.0 Hz"),
        ({"preprocess": {"running_norm_s": -1.0}}, r"preprocess: running_norm_s must be > 0"),
        ({"data": {"cv_folds": 1}}, r"data.cv_folds: 0 \(no CV\) or at least 2"),
        ({"data": {"cv_fold_classes": ["X"]}}, r"data.cv_fold_classes: \['X'\] not in classes"),
    ],
)
def test_a_bad_value_is_refused_at_load_naming_its_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("ecg-mitdb", overrides=overrides)


def test_an_aliasing_config_exits_2_before_reading_any_data(tmp_path, capsys, monkeypatch):
    from pipeline.cli import main
    from pipeline.read import mitdb

    def no_reading(*args, **kwargs):
        raise AssertionError("a recording was read")

    monkeypatch.setattr(mitdb, "read_mitdb", no_reading)
    bad = tmp_path / "aliasing.toml"
    text = (load_config.__globals__["CONFIG_DIR"] / "ecg-mitdb.toml").read_text()
    bad.write_text(text.replace("lowpass_hz = 40.0", "lowpass_hz = 120.0"))
    assert main(["train", "ecg-mitdb", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "aliasing.toml: preprocess: decimating 360.0 Hz by 2 needs a low-pass below 90.0 Hz" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_every_shipped_config_loads_in_both_profiles():
    for path in sorted(load_config.__globals__["CONFIG_DIR"].glob("*.toml")):
        for profile in ("quick", "full"):
            assert load_config(path.stem, profile).task == path.stem
    one = load_config("ecg-mitdb-1lead")
    assert one.channels == ["MLII"] and one.classes == load_config("ecg-mitdb").classes


# --- record-level folds ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds1_counts():
    from pipeline.read.mitdb import read_mitdb_beats

    return {r: Counter(read_mitdb_beats(r).aami.tolist()) for r in load_card("mitdb").splits["DS1"]}


@pytest.mark.parametrize("k", [3, 4, 5])
def test_cv_folds_cover_ds1_never_share_a_record_and_never_touch_ds2(ds1_counts, k):
    card = load_card("mitdb")
    folds = record_folds(ds1_counts, k, ["S", "V"], seed=0)
    ids = [r for fold in folds for r in fold]
    assert len(folds) == k and sorted(ids) == sorted(card.splits["DS1"])  # each DS1 record once
    assert not set(ids) & set(card.splits["DS2"])
    for fold in folds:
        for c in "SV":
            assert sum(ds1_counts[r][c] for r in fold) > 0
    assert record_folds(ds1_counts, k, ["S", "V"], seed=0) == folds  # a pure function


def test_a_fold_without_s_beats_is_refused_naming_its_records(ds1_counts):
    # Records 106 and 109 hold V beats and no S beat.
    with pytest.raises(SplitError, match=r"CV fold 2 of 2 \(records 106, 109\) holds no S beats"):
        check_folds([("209", "223"), ("106", "109")], ds1_counts, ["S", "V"])
    with pytest.raises(SplitError, match=r"record 223 is in CV folds 1 and 2"):
        check_folds([("209", "223"), ("106", "223")], ds1_counts, ["S", "V"])
    # Records 112 and 115 hold 2 and 0 S beats, 0 V: no split into 3 folds can give each S and V.
    few = {r: ds1_counts[r] for r in ("209", "112", "115", "124")}
    with pytest.raises(SplitError, match=r"CV fold \d of 3 \(records [\d, ]+\) holds no (S/)?V beats"):
        record_folds(few, 3, ["S", "V"])


# --- tiny CV training: deterministic, DS2 never read ----------------------------------------

TINY_RECORDS = ("208", "209", "223", "201", "119", "118")


@pytest.fixture(scope="module")
def tiny():
    from pipeline.train.data import load_windows

    cfg = load_config(
        "ecg-mitdb",
        "quick",
        overrides={
            "data": {"cv_folds": 2},
            "train": {
                "epochs": 2,
                "patience": 2,
                "max_majority_per_epoch": 1500,
                "tune_offsets": True,
                "monitor": "kappa",
            },
        },
    )
    table = load_windows(cfg, [*TINY_RECORDS, "100"])
    return cfg, table, Split("record", TINY_RECORDS, (), ("100",))


def test_two_runs_of_a_tiny_config_give_identical_weights_and_never_read_ds2(tiny, monkeypatch):
    from pipeline.train import fit
    from pipeline.train.data import WindowTable

    cfg, table, split = tiny
    read = []
    original = WindowTable.take

    def spy(self, groups, classes):
        read.append(set(groups))
        return original(self, groups, classes)

    monkeypatch.setattr(WindowTable, "take", spy)
    runs = [fit.fit_cv(cfg, table, split, log=lambda *_: None) for _ in range(2)]
    (m1, _, h1, cv1), (m2, _, h2, cv2) = runs
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    oof1, oof2 = cv1.pop("oof"), cv2.pop("oof")
    for key in ("y", "probs", "fold"):
        np.testing.assert_array_equal(oof1[key], oof2[key])
    # (as JSON: a class never predicted has +P NaN, and NaN != NaN in a dict comparison)
    assert json.dumps(cv1, sort_keys=True) == json.dumps(cv2, sort_keys=True)
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    ds2 = set(load_card("mitdb").splits["DS2"])
    assert read and all(not (g & ds2) for g in read)  # CV and the final fit read DS1 only
    unseen = cv1["offsets_on_unseen_records"]  # offsets used only where they carry to unseen folds
    assert cv1["offsets"] == (unseen["found"] if unseen["kept"] else [0.0] * len(cfg.classes))
    assert sorted(r for f in cv1["folds"] for r in f) == sorted(TINY_RECORDS)


def test_the_cv_offsets_are_carried_by_the_output_bias(tiny):
    from pipeline.train import fit

    cfg, table, split = tiny
    model, std, _, cv = fit.fit_cv(cfg, table, split, log=lambda *_: None)
    x, s, _ = table.take(["100"], cfg.classes)
    inputs = [x[:400], std(s[:400])]
    with_offsets = model.predict(inputs, verbose=0)
    fit.fold_offsets_into_bias(model, -np.asarray(cv["offsets"]))  # take them out again
    plain = model.predict(inputs, verbose=0)
    shifted = np.log(plain) + np.asarray(cv["offsets"])
    np.testing.assert_allclose(
        np.log(with_offsets) - np.log(with_offsets).max(1, keepdims=True),
        shifted - shifted.max(1, keepdims=True),
        atol=1e-4,
    )


def test_choose_offsets_corrects_a_prior_it_can_see():
    # Class 1 is under-called by a factor e^1.5: the chosen offset puts it back.
    cfg = load_config("eeg-eegmat", overrides={"train": {"monitor": "kappa"}})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    logit = (2 * y - 1) * 1.0 + rng.normal(0, 1, 4000) - 1.5
    p1 = 1 / (1 + np.exp(-logit))
    from pipeline.train.fit import _score, choose_offsets

    probs = np.stack([1 - p1, p1], 1)
    offsets = choose_offsets(cfg, y, probs)
    assert 1.0 <= offsets[1] <= 2.0
    assert _score(cfg, y, probs, offsets)["kappa"] > _score(cfg, y, probs)["kappa"] + 0.1


def test_offsets_judged_on_unseen_folds_carry_a_shared_prior_and_not_a_fold_specific_one():
    # Two folds. Shared: class 1 under-called by e^1.5 in both -> offsets chosen on one fold
    # help the other. Fold-specific: under-called in fold 0, over-called in fold 1 -> the
    # pooled in-sample score still gains from an offset, but judged on the unseen fold it
    # does not carry.
    from pipeline.train.fit import _monitor, choose_offsets, offsets_on_unseen_records

    cfg = load_config("eeg-eegmat", overrides={"train": {"monitor": "kappa"}})
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.integers(0, 2, n)
    fold = np.repeat([0, 1], n // 2)

    def probs_for(bias):
        p1 = 1 / (1 + np.exp(-((2 * y - 1) * 1.0 + rng.normal(0, 1, n) + bias)))
        return np.stack([1 - p1, p1], 1)

    shared = offsets_on_unseen_records(cfg, y, probs_for(np.full(n, -1.5)), fold)
    assert shared["score"] > shared["plain_score"] + 0.1
    assert all(o[1] >= 1.0 for o in shared["offsets_per_fold"])

    specific_probs = probs_for(np.where(fold == 0, -2.0, 1.0))
    specific = offsets_on_unseen_records(cfg, y, specific_probs, fold)
    in_sample = _monitor(cfg, y, specific_probs, choose_offsets(cfg, y, specific_probs))
    assert specific["score"] < specific["plain_score"] < in_sample
    assert specific["offsets_per_fold"][0][1] < 0 < specific["offsets_per_fold"][1][1]


def test_the_weight_average_is_the_debiased_moving_average_of_every_steps_weights(small_windows):
    from pipeline.train.fit import _EpochTrainer

    cfg, x, s, y = small_windows
    cfg = load_config(
        "ecg-mitdb", "quick", overrides={"train": {"weight_average": 0.9, "batch_size": 256, "augment": False}}
    )
    from pipeline.window.side import Standardiser

    trainer = _EpochTrainer(cfg, x, s, y, Standardiser.fit(s), seed=3, name="")
    seen = []
    from pipeline.train.model import keras

    class Record(keras().callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(trainer.model.get_weights())

    fit_calls = trainer.model.fit

    def fit_recording(*args, callbacks=None, **kw):
        return fit_calls(*args, callbacks=[*(callbacks or []), Record()], **kw)

    trainer.model.fit = fit_recording
    trainer.epoch(0)
    trainer.epoch(1)
    assert len(seen) == trainer.average.steps > 4
    expected = [np.zeros_like(w) for w in seen[0]]
    for weights in seen:
        expected = [0.9 * e + 0.1 * w for e, w in zip(expected, weights)]
    debias = 1 - 0.9 ** len(seen)
    for got, want, last in zip(trainer.weights(), expected, seen[-1]):
        np.testing.assert_allclose(got, want / debias, rtol=1e-4, atol=1e-6)
        assert not np.allclose(got, last)  # the average, not the last step
    raw = trainer.model.get_weights()
    probs = trainer.predict(x[:64], s[:64])
    for a, b in zip(raw, trainer.model.get_weights()):  # predicting leaves training's weights in place
        np.testing.assert_array_equal(a, b)
    trainer.use_weights()
    np.testing.assert_allclose(trainer.model.predict([x[:64], trainer.std(s[:64])], verbose=0), probs, atol=1e-6)


@pytest.fixture(scope="module")
def small_windows():
    """A thousand beats of one DS1 record (all classes present for class weights)."""
    from pipeline.train.data import load_windows

    cfg = load_config("ecg-mitdb", "quick")
    table = load_windows(cfg, ["208"])
    x, s, y = table.take(["208"], cfg.classes)
    keep = np.concatenate([np.flatnonzero(y == c)[:300] for c in range(len(cfg.classes))])
    return cfg, x[keep], s[keep], y[keep]


# --- the benchmark writes the README's result tables ------------------------------------


def test_the_readme_has_the_block_every_benchmark_task_writes():
    from pipeline.readme import read_block
    from pipeline.tools.train_benchmark import TARGETS

    for task in TARGETS:
        read_block(f"results-{task}")  # --write would fail after hours of training otherwise


def test_the_benchmark_table_gives_mean_and_spread_over_seeds():
    from pipeline.tools.train_benchmark import summarise

    def run(kappa, s_se):
        return {
            "test": {
                "kappa": kappa,
                "per_class": {
                    "S": {"se": s_se, "ppv": 0.4},
                    "V": {"se": 0.9, "ppv": 0.7},
                    "F": {"se": 0.1, "ppv": 0.1},
                },
                "accuracy": 0.9,
                "macro_f1": 0.6,
            },
            "cv": {"out_of_fold": {"kappa": 0.6}, "epochs": 9, "offsets": [0.0, 1.0, 0.5, -2.0]},
            "train_seconds": 600,
        }

    table = summarise("ecg-mitdb", [run(0.70, 0.80), run(0.72, 0.84), run(0.74, 0.82)], [7, 8, 9])
    assert "| kappa | 0.720 | 0.020 | 0.020 | 0.700 / 0.720 / 0.740 | >= 0.7 | met" in table
    assert "| S Se | 82.0 | 2.0 | 2.0 | 80.0 / 84.0 / 82.0 | >= 80 | met" in table
    assert "| S +P | 40.0 | 0.0 | 0.0 | 40.0 / 40.0 / 40.0 | >= 45 | **missed**" in table
    assert "[+0.00, +1.00, +0.50, -2.00]" in table


# --- the same weights on another x86 CPU ---------------------------------------------------

#: Two epochs of the ECG model on real DS1 windows in a fresh process; prints a hash of the
#: weights. oneDNN reads ONEDNN_MAX_CPU_ISA once, at TensorFlow's start: hence a process each.
_TRAIN_AND_HASH = """
import hashlib, os
import numpy as np
import pipeline.train
from pipeline.train.config import load_config
from pipeline.train.data import load_windows
from pipeline.train.fit import make_deterministic
from pipeline.train.model import build_model, keras
cfg = load_config("ecg-mitdb", "quick")
make_deterministic(cfg.seed, True)
x, s, y = load_windows(cfg, ["208"]).take(["208"], cfg.classes)
x, s, y = x[:1024], s[:1024], y[:1024]
m = build_model(cfg.model, x.shape[1], x.shape[2], s.shape[1], len(cfg.classes), seed=cfg.seed)
m.compile(optimizer=keras().optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
m.fit([x, s], y, batch_size=256, epochs=2, verbose=0, shuffle=False)
print(os.environ["ONEDNN_MAX_CPU_ISA"], hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest())
"""


def _train_and_hash(isa: str | None) -> tuple[str, str]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", _TRAIN_AND_HASH], env=env, capture_output=True, text=True, check=True, timeout=600
    )
    isa_seen, digest = out.stdout.split()[-2:]
    return isa_seen, digest


@pytest.mark.skipif(platform.machine() != "x86_64", reason="oneDNN's x86 instruction sets")
def test_training_pins_the_cpu_kernels_so_another_x86_cpu_gives_the_same_weights():
    pinned_isa, pinned = _train_and_hash(None)  # what `biosig-edge train` does on any x86 CPU
    assert pinned_isa == "AVX2"
    # The instruction set changes the weights (a CPU without the pin would differ): the pin matters.
    assert _train_and_hash("AVX")[1] != pinned


def test_the_lever_table_names_the_changed_setting_and_the_cv_at_the_chosen_epoch(tmp_path):
    from pipeline.tools.levers import read_run, table

    def fake_run(name, weight_average, curve, chosen):
        path = tmp_path / name
        path.mkdir()
        config = {"seed": 7, "profile": "full", "train": {"weight_average": weight_average, "epochs": 30}}
        (path / "run.json").write_text(json.dumps({"task": "ecg-x", "seed": 7, "config": config}))
        per_class = {c: {"se": 0.5, "ppv": 0.25} for c in "NSVF"}
        cv = {"monitor": "jk_index", "epochs": chosen, "offsets": [0, 0, 0, 0]}
        cv["offsets_on_unseen_records"] = {"kept": False, "found": [0, 1, 0, 0], "score": 0.5, "plain_score": 0.6}
        metrics = {"cv": cv, "test": {"kappa": 0.7, "per_class": per_class}, "n_params": 10}
        (path / "metrics.json").write_text(json.dumps(metrics))
        (path / "history.json").write_text(json.dumps([{"cv_jk_index_plain": v} for v in curve]))
        return read_run(path)

    base = fake_run("base", 0.0, [0.1] * 9 + [0.5, 0.7, 0.4, 0.6], chosen=11)
    lever = fake_run("lever", 0.99, [0.1] * 9 + [0.55, 0.6, 0.62, 0.61], chosen=12)
    assert base["cv_at_chosen"] == 0.7 and abs(base["cv_around_chosen"] - 0.5333) < 1e-3
    assert abs(base["cv_settled_range"] - 0.3) < 1e-9 and abs(lever["cv_settled_range"] - 0.07) < 1e-9
    rows = table([base, lever], ["base", "lever"]).splitlines()
    assert "| base | 0.700 (11) |" in rows[2] and "train.weight_average = 0.99 | 0.620 (12) |" in rows[3]
    assert "found [+0.00, +1.00, +0.00, +0.00]: 0.500 on unseen folds against 0.600 without" in rows[3]
