"""Shared fixtures: the real recordings in ../shared/data (never modified by a test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.read.locate import SHARED_DATA

#: Fixtures that train and export a Keras model (minutes each, once per session).
MODEL_FIXTURES = {"exported", "exported_bonn", "exported_eegmat"}
#: Modules whose tests train models themselves (a test there marked ``fast`` by hand
#: trains nothing: a config check, say).
TRAINING_MODULES = {"test_train", "test_models", "test_sweep", "test_notebook", "test_scale_invariance"}
#: Modules of ``pytest -m fast`` (seconds a test): the C runtime, the manifest checker,
#: the resampler, the causal filter and windows, the QRS detector and the parsers of
#: recordings, cards and splits, and the layer order. Their tests that take a model
#: fixture are ``slow``, never fast; elsewhere a test joins with ``@pytest.mark.fast``.
FAST_MODULES = {
    "test_c_runtime",
    "test_manifest",
    "test_resample",
    "test_preprocess",
    "test_windows",
    "test_qrs",
    "test_read_mitdb",
    "test_read_eeg",
    "test_splits_and_cards",
    "test_layers",
}


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs a trained model ``slow`` (``pytest -m "not slow"``: no
    TensorFlow training, a few minutes) and the rest of :data:`FAST_MODULES` ``fast``
    (``pytest -m fast``: no model, no training, seconds a test)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        # a model fixture taken by name (request.getfixturevalue) shows in the parameters
        params = set(map(str, getattr(getattr(item, "callspec", None), "params", {}).values()))
        used = set(getattr(item, "fixturenames", ())) | params
        marked_fast = item.get_closest_marker("fast") is not None
        if MODEL_FIXTURES & used:
            if marked_fast:
                raise pytest.UsageError(f"{item.nodeid}: marked fast, but takes a model fixture")
            item.add_marker(pytest.mark.slow)
        elif module in TRAINING_MODULES and not marked_fast:
            item.add_marker(pytest.mark.slow)
        elif module in FAST_MODULES and not marked_fast:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "mitdb").is_dir():
        pytest.fail(f"the test recordings are expected in {SHARED_DATA} (see README, 'Data')")
    return SHARED_DATA


@pytest.fixture
def mitdb_copy(tmp_path, data_dir) -> Path:
    """A private copy of records 100 and 114 with their own checksum list, to damage."""
    folder = tmp_path / "mitdb"
    folder.mkdir()
    lines = []
    for line in (data_dir / "mitdb" / "SHA256SUMS.txt").read_text().splitlines():
        name = line.split()[-1]
        if name.split(".")[0] in ("100", "114"):
            shutil.copy(data_dir / "mitdb" / name, folder / name)
            lines.append(line)
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A run trained 2 epochs on three DS1 records (selected by 2-fold record CV), exported, and
    evaluated on DS2 records 100 and 232.

    Returns (run folder, artifact folder, manifest dict).
    """
    import json

    from pipeline.export.export import export_run
    from pipeline.read.splits import Split
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    root = tmp_path_factory.mktemp("export")
    # Three training records: 2-fold record CV (the quick profile's 4 folds need 4 records).
    cfg = load_config(
        "ecg-mitdb",
        "quick",
        overrides={"train": {"epochs": 2, "max_majority_per_epoch": 3000}, "data": {"cv_folds": 2}},
    )
    split = Split("record", ("208", "223", "119"), ("201",), ("100", "232"))
    run = train_task(cfg, root / "run", log=lambda *_: None, split=split)
    out = export_run(
        run, root / "artifacts", eval_limit=300, representative_size=300, stream_eval=40, log=lambda *_: None
    )
    return run, out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")
def exported_bonn(tmp_path_factory):
    """A Bonn model trained 2 epochs on 15 segments (3 per set), exported.

    Returns (run folder, artifact folder, manifest dict).
    """
    import json

    from pipeline.export.export import export_run
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    root = tmp_path_factory.mktemp("export_bonn")
    cfg = load_config(
        "eeg-bonn",
        "quick",
        overrides={"train": {"epochs": 2}, "data": {"limit_train": 15, "limit_val": 5, "limit_test": 10}},
    )
    run = train_task(cfg, root / "run", log=lambda *_: None)
    out = export_run(
        run, root / "artifacts", eval_limit=100, representative_size=100, stream_eval=20, log=lambda *_: None
    )
    return run, out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")
def exported_eegmat(tmp_path_factory):
    """An EEGMAT model trained 2 epochs on 4 subjects (2 for validation), exported.

    Returns (run folder, artifact folder, manifest dict).
    """
    import json

    from pipeline.export.export import export_run
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    root = tmp_path_factory.mktemp("export_eegmat")
    cfg = load_config(
        "eeg-eegmat",
        "quick",
        overrides={"train": {"epochs": 2}, "data": {"limit_train": 4, "limit_val": 2, "limit_test": 2}},
    )
    run = train_task(cfg, root / "run", log=lambda *_: None)
    out = export_run(
        run, root / "artifacts", eval_limit=100, representative_size=100, stream_eval=10, log=lambda *_: None
    )
    return run, out, json.loads((out / "manifest.json").read_text())
