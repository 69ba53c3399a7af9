"""Sweeps on Ray Tune under the device's budget: a real 2-trial local sweep on a few DS1
records (one trial over budget, never trained), each trial scored by record-level CV and
costed by the real tools (the generated C on a Cortex-M4 under QEMU, the C backend on this
CPU); bad input refused before Ray starts, exit 2."""

import json

import numpy as np
import pytest
import tools

from pipeline.errors import ConfigError
from pipeline.read.cards import load_card
from pipeline.read.splits import SplitError
from pipeline.train import sweep as sweep_module
from pipeline.train.config import load_config
from pipeline.train.sweep import (
    BUDGET,
    SweepError,
    architecture_cost,
    check_address,
    check_space,
    load_space,
    pareto_front,
    sample_trials,
    sweep,
)

RECORDS = ["208", "209", "223", "201", "119", "118"]
SHORT = {"data": {"cv_folds": 2}, "train": {"epochs": 1, "max_majority_per_epoch": 800}}


def test_a_two_trial_sweep_on_local_ray_trains_the_trial_within_budget_and_writes_table_plot_and_json(tmp_path):
    pytest.importorskip("ray")
    tools.needs("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    # LSTM(32) on 126-step windows: ~3.5 M instructions per decision, over the 20 ms at
    # 64 MHz budget (LSTM(16): ~1 M); Latin hypercube sampling tries each choice once.
    space = {"train.learning_rate": {"loguniform": [5e-4, 5e-3]}, "model.lstm_units": {"choice": [[8], [32]]}}
    out = tmp_path / "best.toml"
    result = sweep(
        "ecg-mitdb", 2, space=space, out=out, groups=RECORDS, overrides=SHORT, log=lambda *_: None, verbose=0
    )
    assert result["trials"] == 2 and result["ran"] == 1 and result["over_budget"] == 1 and result["failed"] == 0
    assert result["best_score"] == max(result["scores"]) and len(result["scores"]) == 1
    cfg = load_config(out)  # the file `train --config` reads
    assert cfg.model.lstm_units == result["params"]["model.lstm_units"] == [8]
    assert cfg.train.learning_rate == pytest.approx(result["params"]["train.learning_rate"])
    assert cfg.data.cv_folds == 2 and cfg.channels == load_config("ecg-mitdb").channels
    assert "held-out split never read" in out.read_text()
    trials = json.loads((tmp_path / "best-trials.json").read_text())["trials"]
    by_units = {tuple(t["params"]["model.lstm_units"]): t for t in trials}
    over, trained = by_units[(32,)], by_units[(8,)]
    assert over["status"] == "over budget" and over["within_budget"] is False and over["epochs_run"] == 0
    assert over["cost"]["m4_ms"] > BUDGET["m4_ms"] and "cv_score" not in over
    assert trained["status"] == "trained" and trained["within_budget"] is True and trained["pareto"] is True
    assert trained["cost"]["m4_ms"] < over["cost"]["m4_ms"] and trained["cost"]["us_float32"] > 0
    # What Ray itself ran (its trial folders): the trial within budget, never the other.
    ran = [json.loads(p.read_text()) for p in (tmp_path / "best-ray").rglob("params.json")]
    assert [r["trial"] for r in ran] == [trained["trial"]]
    table = (tmp_path / "best-pareto.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| {over['trial']} |"))
    assert "| over budget |" in row and "| **no** |" in row
    assert "1 ran (0 stopped early by ASHA, 0 failed), 1 over the device budget (never trained)" in table
    assert (tmp_path / "best-pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_over_budget_architecture_is_never_trained_and_the_table_says_so(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    tools.needs("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    import ray
    from ray import tune

    from pipeline.train import fit

    def never(*_args, **_kwargs):
        raise AssertionError("an over-budget trial went to training")

    # Every training passes through Ray in the driver (its trials call cross_validate).
    monkeypatch.setattr(fit, "cross_validate", never)
    monkeypatch.setattr(ray, "init", never)
    monkeypatch.setattr(tune, "Tuner", never)
    out = tmp_path / "best.toml"
    with pytest.raises(SweepError, match=r"no trial finished within the device budget \(2 over budget\)"):
        sweep(
            "ecg-mitdb",
            2,
            space={"model.lstm_units": {"choice": [[32], [12, 12]]}},
            out=out,
            groups=RECORDS,
            overrides=SHORT,
            log=lambda *_: None,
        )
    assert not out.exists()
    trials = json.loads((tmp_path / "best-trials.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["over budget", "over budget"]
    assert all(t["cost"]["m4_ms"] > BUDGET["m4_ms"] and t["epochs_run"] == 0 for t in trials)
    rows = [line for line in (tmp_path / "best-pareto.md").read_text().splitlines() if line.startswith("| 0 |")]
    assert len(rows) == 1 and "| over budget |" in rows[0] and "| **no** |" in rows[0]


def _cost_windows(data_dir, cfg, n=8):
    from pipeline.train.data import load_windows
    from pipeline.window.side import Standardiser

    table = load_windows(cfg, ["118"], data_dir)
    pick = np.linspace(0, len(table.label) - 1, n).round().astype(int)
    return table.x[pick], Standardiser.fit(table.side)(table.side[pick]), table.fs_in_hz


def test_the_cost_of_the_shipped_ecg_architecture_is_what_export_and_validation_measure(tmp_path, data_dir):
    """The sweep costs an untrained model; export generates the C of a trained one and the
    validation report runs it on the M4. Same architecture, other weights: flash and RAM
    must be equal to the byte (the weights are const data of fixed size), the int8
    instructions per decision within 1 % (its multiply-accumulate loops do not depend on
    the values; only softmax and the sigmoid table's clamp do), float32's within 10 %
    (float's branches follow the activations: 3.4 % apart on record 118's beats)."""
    tools.needs("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    from pipeline.export.export import ExportInputs, export_generated_c
    from pipeline.train.model import build_model
    from pipeline.validate.validate import firmware_check

    cfg = load_config("ecg-mitdb")
    x, side, fs_in_hz = _cost_windows(data_dir, cfg)
    cost = architecture_cost(cfg, x, side, fs_in_hz, n_decisions=20)

    # Export's path on a model of the same architecture with other (random) weights.
    model = build_model(cfg.model, x.shape[1], x.shape[2], side.shape[1], len(cfg.classes), seed=cfg.seed + 1)
    for layer in model.layers:
        layer.set_weights([w + np.random.default_rng(1).normal(0, 0.05, w.shape) for w in layer.get_weights()])
    inputs = {"signal": x, "side": side}
    ref = model.predict([x, side], verbose=0)
    run = {"input_shape": list(x.shape[1:]), "preprocess": cfg.preprocess_spec(fs_in_hz).to_dict(), "config": {}}
    ctx = ExportInputs(
        tmp_path, run, cfg, cfg.classes, model, None, [], inputs, np.zeros(len(x), np.int64), ref, {}, {}, {}
    )
    _, made = export_generated_c(ctx, tmp_path, lambda *_: None)
    report = firmware_check(tmp_path, {"artifacts": made.artifacts, "classes": cfg.classes}, log=lambda *_: None)
    for precision, instructions_rtol in (("int8", 0.01), ("float32", 0.10)):
        ours, theirs = cost[f"c_{precision}"], report[f"c_{precision}"]
        assert ours["flash_bytes"] == theirs["flash_bytes"]
        assert ours["ram_with_stack_bytes"] == theirs["ram_with_stack_bytes"]
        assert ours["instructions_mean"] == pytest.approx(theirs["instructions_mean"], rel=instructions_rtol)
    assert cost["flash_kb"] == report["c_int8"]["flash_bytes"] / 1024
    assert cost["ram_kb"] == report["c_int8"]["ram_with_stack_bytes"] / 1024
    assert cost["m4_ms"] == pytest.approx(report["c_int8"]["ms_at_clock"], rel=0.01)
    assert cost["within_budget"] is True and cost["us_int8"] > 0 and cost["notes"] == []


def test_without_qemu_the_cost_keeps_flash_and_ram_and_says_what_is_missing(data_dir, monkeypatch):
    tools.needs("gcc", "arm-none-eabi-gcc")
    from firmware_export import build

    real = build.require

    def require(tool):
        if tool == "qemu-system-arm":
            raise build.ToolMissing("qemu-system-arm not found (Debian: apt-get install qemu-system-arm)")
        return real(tool)

    monkeypatch.setattr(build, "require", require)
    cfg = load_config("ecg-mitdb")
    cost = architecture_cost(cfg, *_cost_windows(data_dir, cfg, 2), n_decisions=5)
    assert cost["m4_ms"] is None and cost["flash_kb"] > 0 and cost["ram_kb"] > 0
    assert cost["within_budget"] is None  # nothing measured is over, but time was not measured
    assert any("qemu-system-arm not found" in note for note in cost["notes"])


def test_a_firmware_that_does_not_build_still_gets_its_sizes_and_a_note(data_dir, monkeypatch):
    tools.needs("gcc", "arm-none-eabi-gcc")
    from firmware_export import build

    def fails(*_args, **_kwargs):
        raise build.BuildError("arm-none-eabi-gcc failed (1): region `FLASH' overflowed")

    # A model too large for the board's 4 MB links no firmware; its sizes are still what
    # decide that it is over budget.
    monkeypatch.setattr(build, "cortex_m4_check", fails)
    cfg = load_config("ecg-mitdb")
    cost = architecture_cost(cfg, *_cost_windows(data_dir, cfg, 2), n_decisions=5)
    assert cost["flash_kb"] > 0 and cost["m4_ms"] is None and cost["us_int8"] > 0
    assert any("c_int8 on the M4 not run" in note and "overflowed" in note for note in cost["notes"])


@pytest.mark.fast
def test_a_trial_asha_stopped_is_counted_as_stopped_early_and_never_as_trained():
    from pipeline.train.sweep import pareto_markdown, record_result

    stopped, trained, failed = ({"trial": i, "params": {}, "epochs_run": 0} for i in range(3))
    record_result(stopped, None, {"epoch": 2, "cv_plain": 0.412, "val_kappa": 0.3})
    record_result(
        trained, None, {"epoch": 5, "cv_plain": 0.5, "cv_score": 0.55, "epochs": 4, "epochs_run": 5, "kappa": 0.6}
    )
    record_result(failed, RuntimeError("boom\nValueError: nan loss"), {})
    assert stopped["status"] == "stopped early" and stopped["epochs_run"] == 2 and "cv_score" not in stopped
    assert trained["status"] == "trained" and trained["cv_score"] == 0.55 and trained["epochs_run"] == 5
    assert failed == {"trial": 2, "params": {}, "epochs_run": 0, "status": "failed", "reason": "ValueError: nan loss"}
    table = pareto_markdown([stopped, trained, failed], [])
    assert "| stopped early by ASHA (plain CV 0.4120 at epoch 2) | - | 2 |" in table
    assert "| failed: ValueError: nan loss |" in table


@pytest.mark.fast
def test_the_pareto_front_keeps_what_no_other_trial_beats_on_score_time_and_flash():
    points = [
        (0.60, 10.0, 20.0),  # on the front
        (0.70, 15.0, 20.0),  # on the front: best score
        (0.65, 16.0, 25.0),  # beaten by the one above on all three
        (0.50, 5.0, 30.0),  # on the front: fastest
        (0.60, 10.0, 20.0),  # a tie with the first: neither beats the other
        (0.55, 12.0, 8.0),  # on the front: smallest
        (0.55, None, 8.0),  # unmeasured time counts as worst: beaten by the one above
    ]
    assert pareto_front(points) == [True, True, False, True, True, True, False]


@pytest.mark.fast
def test_sampling_tries_every_choice_and_every_stretch_of_a_range_and_is_seeded():
    space = {"model.lstm_units": {"choice": [[8], [16], [24]]}, "train.learning_rate": {"loguniform": [1e-4, 1e-2]}}
    trials = sample_trials(space, 6, seed=7)
    assert trials == sample_trials(space, 6, seed=7) and trials != sample_trials(space, 6, seed=8)
    assert sorted(t["model.lstm_units"][0] for t in trials) == [8, 8, 16, 16, 24, 24]
    strata = sorted(int(np.log10(t["train.learning_rate"] / 1e-4) / 2 * 6) for t in trials)
    assert strata == [0, 1, 2, 3, 4, 5]
    ints = sample_trials({"train.epochs": {"randint": [2, 4]}}, 4, seed=0)
    assert sorted(t["train.epochs"] for t in ints) == [2, 2, 3, 3]


@pytest.mark.fast
def test_the_sweep_turns_instructions_into_time_at_the_reports_clock_and_uses_exports_prefix():
    from pipeline.export.export import C_PREFIX
    from pipeline.validate.validate import MCU_CLOCK_HZ

    assert sweep_module.MCU_CLOCK_HZ == MCU_CLOCK_HZ and sweep_module.C_PREFIX == C_PREFIX


def test_asha_judges_each_epochs_plain_cv_score_and_a_trial_reports_cvs_score_last(monkeypatch):
    pytest.importorskip("ray")
    from ray import tune

    from pipeline.train import fit
    from pipeline.train.sweep import _trial, asha_scheduler

    scheduler = asha_scheduler(30)
    assert (scheduler._time_attr, scheduler._metric, scheduler._max_t) == ("epoch", "cv_plain", 30)
    reports = []
    monkeypatch.setattr(tune, "report", lambda metrics: reports.append(metrics))
    monkeypatch.setattr(fit, "make_deterministic", lambda seed, deterministic=True: reports.append({"seed": seed}))

    def cross_validate(cfg, table, groups, log, on_epoch):
        for epoch, plain in ((1, 0.41), (2, 0.47)):
            on_epoch({"epoch": epoch, "cv_jk_index_plain": plain, "cv_jk_index": plain + 0.1, "val_kappa": 0.3})
        history = [{"epoch": 1, "cv_jk_index_plain": 0.41}, {"epoch": 2, "cv_jk_index_plain": 0.47}]
        return {"score": 0.52, "epochs": 2, "history": history, "out_of_fold": {"kappa": 0.35}}

    monkeypatch.setattr(fit, "cross_validate", cross_validate)
    cfg = load_config("ecg-mitdb")
    table = type("Table", (), {"group": np.array(["118", "119"])})()
    _trial({"trial": 3}, {3: {"config": cfg.to_dict(), "window_key": "w"}}, {"w": table})
    assert reports == [
        {"seed": cfg.seed},
        {"epoch": 1, "cv_plain": 0.41, "val_kappa": 0.3},
        {"epoch": 2, "cv_plain": 0.47, "val_kappa": 0.3},
        {"epoch": 2, "cv_plain": 0.47, "cv_score": 0.52, "epochs": 2, "epochs_run": 2, "kappa": 0.35},
    ]


def test_the_windows_are_read_once_per_window_setting(monkeypatch):
    from pipeline.train import data
    from pipeline.train.config import config_from_dict
    from pipeline.train.data import WindowTable
    from pipeline.train.sweep import _read_tables, merged_config, window_key

    reads = []

    def load_windows(cfg, groups, data_dir=None):
        reads.append((cfg.window.before_s, cfg.preprocess.decimate))
        label = np.array(["N", "S", "V"] * len(groups))
        group = np.repeat(groups, 3)
        return WindowTable(np.zeros((len(label), 4, 1), np.float32), np.zeros((len(label), 0)), label, group, 360.0, {})

    monkeypatch.setattr(data, "load_windows", load_windows)
    base = load_config("ecg-mitdb", overrides=SHORT).to_dict()
    rows = []
    for params in (
        {"window.before_s": 0.25},
        {"window.before_s": 0.2},
        {"window.before_s": 0.25},
        {"preprocess.decimate": 3},
    ):
        cfg = config_from_dict(merged_config(base, params))
        rows.append({"status": "to train", "cfg": cfg, "window_key": window_key(cfg)})
    tables = _read_tables(rows, RECORDS, None, log=lambda *_: None)
    assert sorted(reads) == [(0.2, 2), (0.25, 2), (0.25, 3)] and len(tables) == 3


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.learning_rat": {"uniform": [0.001, 0.002]}}, "unknown key 'train.learning_rat'"),
        ({"data.cv_folds": {"choice": [2, 4]}}, "unknown key 'data.cv_folds'"),
        ({"model.lstm_units": {"choice": []}}, "'model.lstm_units': choice takes a list"),
        ({"model.dropout": {"gaussian": [0.2, 0.1]}}, "'model.dropout' must be one table entry"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(space)


def test_the_sweep_command_refuses_an_unknown_key_with_exit_2(tmp_path, capsys):
    from pipeline.cli import main

    space = tmp_path / "space.toml"
    space.write_text('["train.epochz"]\nchoice = [2, 3]\n')
    assert main(["sweep", "ecg-mitdb", "--trials", "2", "--space", str(space)]) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err


def test_a_ray_address_that_does_not_answer_is_refused_before_data_or_ray(capsys, monkeypatch):
    import socket

    from pipeline.cli import main
    from pipeline.train import data

    # ray.init on a dead address waits for minutes; the sweep must instead try one
    # connection with a bounded timeout and refuse before reading data or starting Ray.
    attempts = []
    real_connect = socket.create_connection

    def connect(address, timeout=None, *args, **kwargs):
        attempts.append((address, timeout))
        return real_connect(address, timeout, *args, **kwargs)

    def never(*_args, **_kwargs):
        raise AssertionError("the sweep read data before refusing the address")

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(data, "task_split", never)
    monkeypatch.setattr(data, "load_windows", never)
    assert main(["sweep", "ecg-mitdb", "--trials", "2", "--address", "127.0.0.1:9"]) == 2
    assert attempts == [(("127.0.0.1", 9), 10.0)]
    assert "Ray address '127.0.0.1:9' does not answer" in capsys.readouterr().err
    with pytest.raises(SweepError, match="expected HOST:PORT"):
        check_address("no-port")


def test_a_sweep_whose_cv_fold_lacks_v_beats_is_refused_naming_the_records():
    # 220 holds 94 S beats and 112 two; neither holds a V beat.
    with pytest.raises(SplitError, match=r"CV fold \d of 2 \(records (112|220)\) holds no V beats"):
        sweep("ecg-mitdb", 2, groups=["220", "112"], overrides=SHORT, log=lambda *_: None)


def test_a_sweep_never_takes_held_out_records():
    with pytest.raises(ConfigError, match=r"sweep records \['100'\] are in the held-out split"):
        sweep("ecg-mitdb", 2, groups=["208", "100"], overrides=SHORT, log=lambda *_: None)
    assert "100" in load_card("mitdb").splits["DS2"]


def test_the_default_space_is_valid():
    check_space(load_space(None))


@pytest.mark.fast
def test_a_space_may_change_the_windows_but_never_the_folds():
    check_space({"window.before_s": {"uniform": [0.2, 0.3]}, "preprocess.decimate": {"choice": [2, 3]}})
    with pytest.raises(ConfigError, match="unknown key 'data.cv_seed'"):
        check_space({"data.cv_seed": {"choice": [0, 1]}})
