"""Training on real recordings: metrics, configs, a short fit, reload, no leakage."""

import json

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.metrics import binary_view, classification_metrics, confusion_matrix, ecg_indices
from pipeline.read.cards import load_card
from pipeline.read.splits import Split
from pipeline.train.config import load_config

# --- metrics on hand-made confusion matrices ---------------------------------------


def test_binary_metrics_by_hand():
    # 50 negatives all right; of 50 positives 40 found. po = 0.9, pe = (50*60 + 50*40) / 100^2 = 0.5.
    m = classification_metrics(np.array([[50, 0], [10, 40]]), ["neg", "pos"])
    assert m["per_class"]["pos"]["se"] == 0.8
    assert m["per_class"]["pos"]["ppv"] == 1.0
    assert m["per_class"]["neg"]["ppv"] == pytest.approx(50 / 60)
    assert m["accuracy"] == 0.9
    assert m["kappa"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx(np.mean([2 * 50 / 110, 2 * 40 / 90]))


def test_multiclass_metrics_with_an_absent_class():
    cm = np.array([[8, 2, 0], [1, 4, 0], [0, 0, 0]])  # class C never occurs nor is predicted
    m = classification_metrics(cm, ["A", "B", "C"])
    assert np.isnan(m["per_class"]["C"]["se"])
    assert m["macro_f1"] == pytest.approx(np.mean([16 / 19, 8 / 11]))  # over A and B only
    assert m["n"] == 15


def test_confusion_matrix_and_views():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    b = binary_view(cm, ["a", "b", "c"], "c")
    assert (b["tp"], b["fn"], b["fp"], b["tn"]) == (2, 1, 0, 3)
    assert b["sensitivity"] == pytest.approx(2 / 3) and b["specificity"] == 1.0
    m = classification_metrics(np.diag([10, 5, 5, 1]), ["N", "S", "V", "F"])
    assert ecg_indices(m) == {"j_index": 4.0, "jk_index": 0.5 + 0.5}


# --- configs -----------------------------------------------------------------------


def test_every_task_config_loads_in_both_profiles():
    for task in ("ecg-mitdb", "eeg-bonn", "eeg-eegmat"):
        for profile in ("quick", "full"):
            cfg = load_config(task, profile)
            assert cfg.profile == profile and cfg.classes


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train.epoch: unknown key"):
        load_config("ecg-mitdb", overrides={"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="model.dropout: expected float, got str"):
        load_config("ecg-mitdb", overrides={"model": {"dropout": "high"}})
    with pytest.raises(ConfigError, match="no profile 'fast'"):
        load_config("ecg-mitdb", "fast")
    with pytest.raises(ConfigError, match="no task 'ecg-foo'"):
        load_config("ecg-foo")
    bad = tmp_path / "bad.toml"
    bad.write_text("task = 'x'\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: colour: unknown key"):
        load_config(bad)


@pytest.mark.fast
@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "dropout", 1.5, r"model\.dropout: a rate in \[0, 1\), not 1\.5"),
        ("model", "lstm_input_dropout", -0.1, r"model\.lstm_input_dropout: a rate in \[0, 1\)"),
        ("model", "lstm_units", [0], r"model\.lstm_units: every layer needs at least 1 unit"),
        ("model", "lstm_units", [], r"model\.lstm_units: 1 to 4 LSTM layers .*not 0"),
        ("model", "lstm_units", [8] * 5, r"model\.lstm_units: 1 to 4 LSTM layers \(the generated C's limit\), not 5"),
        ("model", "dense_units", 0, r"model\.dense_units: at least 1, not 0"),
        ("window", "before_s", -1.0, r"window\.before_s: 0 or more seconds, not -1\.0"),
        ("window", "after_s", 0.0, r"window\.after_s: more than 0 seconds"),
        ("window", "hop_s", 0.0, r"window\.hop_s: more than 0 seconds, not 0\.0"),
        ("window", "window_s", -2.0, r"window\.window_s: more than 0 seconds"),
        ("train", "epochs", 0, r"train\.epochs: must be above 0, not 0"),
        ("train", "batch_size", 0, r"train\.batch_size: must be above 0, not 0"),
        ("train", "learning_rate", 0.0, r"train\.learning_rate: must be above 0"),
        ("train", "patience", 0, r"train\.patience: must be above 0"),
        ("train", "max_majority_per_epoch", -1, r"train\.max_majority_per_epoch: 0 or more"),
    ],
)
def test_a_value_out_of_range_is_refused_at_load_naming_the_key(section, key, value, message):
    from firmware_export.c_model import MAX_LSTM_LAYERS

    assert MAX_LSTM_LAYERS == 4  # the message above names the C runtime's limit
    with pytest.raises(ConfigError, match=message) as err:
        load_config("ecg-mitdb", "quick", overrides={section: {key: value}})
    assert "\n" not in str(err.value) and "ecg-mitdb.toml" in str(err.value)


@pytest.mark.fast
def test_a_value_out_of_range_exits_2_in_one_line(tmp_path, capsys):
    from pipeline.cli import main
    from pipeline.train.config import CONFIG_DIR

    text = (CONFIG_DIR / "ecg-mitdb.toml").read_text()
    assert "\ndropout = 0.3\n" in text
    config = tmp_path / "bad.toml"
    config.write_text(text.replace("\ndropout = 0.3\n", "\ndropout = 1.5\n"))
    assert main(["train", "ecg-mitdb", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.toml: model.dropout: a rate in [0, 1), not 1.5" in err
    assert not (tmp_path / "run").exists()


# --- a short fit on real beats -----------------------------------------------------


@pytest.fixture(scope="module")
def small_ecg():
    """Beats of four DS1 records (all four classes) and one DS2 record."""
    from pipeline.train.data import load_windows

    cfg = load_config(
        "ecg-mitdb", "quick", overrides={"train": {"epochs": 2, "patience": 5, "max_majority_per_epoch": 3000}}
    )
    table = load_windows(cfg, ["208", "223", "201", "119", "100"])
    split = Split("record", ("208", "223", "119"), ("201",), ("100",))
    return cfg, table, split


def test_loss_falls_and_no_ds2_record_reaches_training(small_ecg, monkeypatch):
    from pipeline.train import fit
    from pipeline.train.data import WindowTable

    cfg, table, split = small_ecg
    seen = []
    original = WindowTable.take

    def spy(self, groups, classes):
        seen.append(tuple(groups))
        return original(self, groups, classes)

    monkeypatch.setattr(WindowTable, "take", spy)
    model, std, history = fit.fit_one(cfg, table, split, log=lambda *_: None)
    assert history[1]["loss"] < history[0]["loss"]
    ds2 = set(load_card("mitdb").splits["DS2"])
    assert seen[:2] == [split.train, split.val]  # the only data fit_one reads
    assert not ds2 & (set(seen[0]) | set(seen[1]))
    n_params = model.count_params()
    assert n_params < 50_000


def test_saved_model_reloads_with_the_same_outputs(small_ecg, tmp_path):
    from pipeline.train import fit
    from pipeline.train.model import load_model

    cfg, table, split = small_ecg
    model, std, _ = fit.fit_one(cfg, table, split, log=lambda *_: None)
    model.save(tmp_path / "model.keras")
    again = load_model(tmp_path / "model.keras")
    x, s, _ = table.take(["100"], cfg.classes)
    a = model.predict([x[:300], std(s[:300])], verbose=0)
    b = again.predict([x[:300], std(s[:300])], verbose=0)
    np.testing.assert_array_equal(a, b)
    assert {layer.__class__.__name__ for layer in again.layers} <= {
        "InputLayer",
        "LSTM",
        "Concatenate",
        "Dense",
        "Dropout",
    }  # no Lambda layers


def test_nan_loss_stops_and_keeps_the_last_good_weights(small_ecg, monkeypatch):
    from pipeline.train import fit

    cfg, table, split = small_ecg
    calls = []
    weights = fit.class_weights

    def poisoned(y, n_classes, mode):
        # A loss that diverges in epoch 2, simulated through NaN sample weights.
        calls.append(1)
        w = weights(y, n_classes, mode)
        return w if len(calls) == 1 else np.full_like(w, np.nan)

    monkeypatch.setattr(fit, "class_weights", poisoned)
    with pytest.raises(
        fit.TrainingError, match=r"loss became nan at epoch 2; stopped, keeping the weights of epoch 1"
    ) as info:
        fit.fit_one(cfg, table, split, log=lambda *_: None)
    kept = info.value.model
    assert kept is not None and all(np.isfinite(w).all() for w in kept.get_weights())


def test_nan_windows_are_refused_before_training(small_ecg):
    from pipeline.train import fit
    from pipeline.train.data import WindowTable

    cfg, table, split = small_ecg
    x = table.x.copy()
    x[np.flatnonzero(table.group == "223")[5], 10, 0] = np.nan
    bad = WindowTable(x, table.side, table.label, table.group, table.fs_in_hz, {})
    with pytest.raises(fit.TrainingError, match="training inputs hold NaN/inf"):
        fit.fit_one(cfg, bad, split, log=lambda *_: None)


def test_train_command_writes_a_complete_run_folder(tmp_path, capsys):
    from pipeline.cli import main

    config = tmp_path / "tiny-bonn.toml"
    text = (load_config.__globals__["CONFIG_DIR"] / "eeg-bonn.toml").read_text()
    config.write_text(
        text.replace(
            "[profiles.quick.train]\nepochs = 3",
            "[profiles.quick.train]\nepochs = 2\n\n[profiles.quick.data]\n"
            "limit_train = 15\nlimit_val = 5\nlimit_test = 10",
        )
    )
    assert (
        main(["train", "eeg-bonn", "--config", str(config), "--profile", "quick", "--out", str(tmp_path / "run")]) == 0
    )
    run = tmp_path / "run"
    for name in (
        "model.keras",
        "run.json",
        "metrics.json",
        "metrics.md",
        "history.json",
        "curves.png",
        "confusion.png",
    ):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert not set(info["split"]["test"]) & set(info["split"]["train"] + info["split"]["val"])
    assert len(info["split"]["test"]) == 10 and metrics["test"]["n"] == 10 * 22
    assert info["preprocess"]["fs_out_hz"] == pytest.approx(86.805)
    assert "E_S vs rest" in (run / "metrics.md").read_text()
    assert metrics["test"]["per_recording"]["n"] == 10
    assert "run folder:" in capsys.readouterr().out


@pytest.mark.fast
def test_one_distribution_owns_the_tensorflow_package():
    """tf-keras requires the distribution named ``tensorflow``: a second one (tensorflow-cpu,
    as the train extra once pinned) writes the same ``tensorflow/`` folder, file by file
    whichever was installed last, and uninstalling either breaks the other."""
    from importlib import metadata

    owners = sorted(
        {
            dist.metadata["Name"]
            for dist in metadata.distributions()
            if any(file.parts[0] == "tensorflow" for file in dist.files or ())
        }
    )
    assert owners == ["tensorflow"], f"distributions writing tensorflow/: {owners}"


def test_training_says_nothing_about_gpus_or_tf_data_on_a_cpu_machine():
    """A short fit and predict, as training runs them (op determinism, a last batch shorter
    than the others, the weight average), in a fresh process: its stderr is empty. Before,
    each fit and predict logged tf.data's 'NodeDef mentions attribute' error line and the
    CUDA-built wheel its 'Could not find cuda drivers' / 'failed call to cuInit' lines."""
    import subprocess
    import sys

    code = """
import numpy as np
from pipeline.train.config import load_config
from pipeline.train.fit import _EpochTrainer, make_deterministic
from pipeline.window.side import Standardiser
cfg = load_config("ecg-mitdb", "quick", overrides={"train": {"weight_average": 0.99}})
make_deterministic(7)
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 126, 2)).astype(np.float32)
s, y = rng.normal(size=(3000, 6)), rng.integers(0, 4, 3000)
trainer = _EpochTrainer(cfg, x, s, y, Standardiser.fit(s), 7, "")
trainer.epoch(0)
print(trainer.predict(x[:1500], s[:1500]).shape)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1500, 4)"
    assert done.stderr.strip() == ""
