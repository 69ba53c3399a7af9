"""The models shipped inside the package: signed, complete, and streamed by name with no training."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from chunking import stream_stdin

from pipeline.manifest import ManifestError, read_manifest, seal
from pipeline.read.mitdb import read_mitdb
from pipeline.runtime.shipped import MODELS_KEY, ShippedModelError, resolve_artifact_dir, shipped_names

SHIPPED = shipped_names()


def test_at_least_one_model_ships_with_the_repository_key():
    assert SHIPPED, "no shipped model under pipeline/runtime/models"
    assert MODELS_KEY.is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_folder_is_signed_by_the_repository_key_and_its_files_match(name):
    folder, key = resolve_artifact_dir(name)
    assert key == MODELS_KEY
    manifest = read_manifest(folder, trusted_key=key)  # signature, digest, every file's size and sha256
    listed = {a.file for a in manifest.artifacts} | {"manifest.json", "manifest.sig"}
    assert {p.name for p in folder.iterdir()} == listed  # nothing unlisted rides along
    assert manifest.source_run is not None
    assert "/" not in json.dumps(manifest.source_run.to_dict())  # no machine path ships


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_folder_altered_and_resealed_is_refused(name, tmp_path):
    folder, key = resolve_artifact_dir(name)
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["classes"] = list(reversed(raw["classes"]))  # a forgery that a digest alone would let through
    (copy / "manifest.json").write_text(json.dumps(seal(raw)))
    with pytest.raises(ManifestError, match="not a valid signature"):
        read_manifest(copy, trusted_key=key)


def test_an_unknown_name_says_what_ships():
    with pytest.raises(ShippedModelError, match="shipped: " + SHIPPED[0]):
        resolve_artifact_dir("no-such-model")


def _ecg_names():
    return [n for n in SHIPPED if read_manifest(resolve_artifact_dir(n)[0]).kind.startswith("ecg")]


@pytest.mark.parametrize("name", _ecg_names())
def test_a_shipped_ecg_model_streams_a_dataset_record_by_name(name, data_dir):
    cli = [sys.executable, "-m", "pipeline.cli", "stream", name, "mitdb:100", "--duration-s", "60"]
    out = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, "BIOSIG_EDGE_DATA": str(data_dir)})
    assert out.returncode == 0, out.stderr
    beats = [e for e in map(json.loads, out.stdout.splitlines()) if e["type"] == "beat"]
    # Record 100's first minute holds 75 annotated beats; the shipped model finds them and calls most N.
    annotated = read_mitdb("100", channels=["MLII"]).beats
    n_annotated = int(np.sum(annotated.sample < 360 * 60))
    assert abs(len(beats) - n_annotated) <= 3
    assert sum(b["class"] == "N" for b in beats) >= 0.9 * len(beats)


@pytest.mark.parametrize("name", _ecg_names())
def test_a_device_only_install_streams_a_shipped_model_by_name(name):
    python = os.environ.get("BIOSIG_EDGE_DEVICE_PYTHON")
    if not python:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but BIOSIG_EDGE_DEVICE_PYTHON is not set: .ci/run must build .venv-device")
        pytest.skip("no device-only environment (set BIOSIG_EDGE_DEVICE_PYTHON; .ci/run does)")
    manifest = read_manifest(resolve_artifact_dir(name)[0])
    signal = read_mitdb("213", channels=list(manifest.input.channels)).signal
    text = "\n".join(" ".join(f"{v:.4f}" for v in row) for row in signal[: 360 * 30]) + "\n"
    result = stream_stdin(python, name, text, 360, "mV")
    assert result.returncode == 0, result.stderr
    assert sum(json.loads(line)["type"] == "beat" for line in result.stdout.splitlines()) > 30
