"""Sweeps on Ray Tune: a real 2-trial local sweep on a few DS1 records, each trial scored
by record-level CV; bad input refused before Ray starts, exit 2."""

import pytest

from pipeline.errors import ConfigError
from pipeline.read.cards import load_card
from pipeline.read.splits import SplitError
from pipeline.train.config import load_config
from pipeline.train.sweep import SweepError, check_address, check_space, load_space, sweep

RECORDS = ["208", "209", "223", "201", "119", "118"]
SHORT = {"data": {"cv_folds": 2}, "train": {"epochs": 1, "max_majority_per_epoch": 800}}


def test_a_two_trial_sweep_on_local_ray_writes_a_config_train_takes(tmp_path):
    pytest.importorskip("ray")
    space = {"train.learning_rate": {"loguniform": [5e-4, 5e-3]}, "model.lstm_units": {"choice": [[8], [12]]}}
    out = tmp_path / "best.toml"
    result = sweep(
        "ecg-mitdb", 2, space=space, out=out, groups=RECORDS, overrides=SHORT, log=lambda *_: None, verbose=0
    )
    assert result["trials"] == 2 and result["failed"] == 0 and len(result["scores"]) == 2
    assert result["best_score"] == max(result["scores"])
    cfg = load_config(out)  # the file `train --config` reads
    assert cfg.model.lstm_units == result["params"]["model.lstm_units"]
    assert cfg.train.learning_rate == pytest.approx(result["params"]["train.learning_rate"])
    assert cfg.data.cv_folds == 2 and cfg.channels == load_config("ecg-mitdb").channels
    assert "held-out split never read" in out.read_text()


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.learning_rat": {"uniform": [0.001, 0.002]}}, "unknown key 'train.learning_rat'"),
        ({"window.before_s": {"uniform": [0.2, 0.3]}}, "unknown key 'window.before_s'"),
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
