"""The manifest is trusted only as far as it is checked: its content by a digest, its keys
to their nested values, its files by size (before reading) and sha256, and with a
trusted key by an Ed25519 signature. Every refusal is one line naming the problem."""

import io
import json
import shutil

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.manifest import (
    SCHEMA_PATH,
    Manifest,
    ManifestError,
    load_manifest,
    new_keypair,
    seal,
    sign_folder,
    verify_artifact,
)


@pytest.fixture
def folder(exported, tmp_path):
    """A private copy of the exported ECG folder, to damage."""
    copy = tmp_path / "art"
    shutil.copytree(exported[1], copy)
    return copy


def _edit(folder, change, reseal=False):
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(seal(m) if reseal else m, indent=2))


def test_one_changed_filter_coefficient_in_the_manifest_is_refused(folder):
    # Reliability probe D2: a one-byte edit of the SOS, the side-feature mean or a class
    # name used to load silently and change (or silence) every decision.
    for change in (
        lambda m: m["preprocess"]["sos"][1].__setitem__(5, 1.9877417210094565),
        lambda m: m["side_features"]["mean"].__setitem__(0, 0.1995),
        lambda m: m["classes"].__setitem__(1, "V"),
    ):
        copy = folder.parent / f"c{id(change)}"
        shutil.copytree(folder, copy)
        _edit(copy, change)
        with pytest.raises(ManifestError, match="does not match its digest.*altered"):
            load_manifest(copy)


def test_an_unstable_filter_is_refused_even_with_a_matching_digest(folder):
    _edit(folder, lambda m: m["preprocess"]["sos"][1].__setitem__(5, 1.9877417210094565), reseal=True)
    with pytest.raises(ManifestError, match=r"'preprocess.sos' row 1 is unstable"):
        load_manifest(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["artifacts"].__setitem__(0, "tflite_float32"), r"'artifacts\[0\]' must be an object"),
        (lambda m: m.__setitem__("classes", []), r"'classes' must hold at least 2"),
        (lambda m: m["preprocess"].pop("sos"), r"'preprocess.sos' is missing"),
        (lambda m: m["window"].pop("n_before_samples"), r"'window.n_before_samples' is missing"),
        (lambda m: m["window"].__setitem__("n_after_samples", 80), r"'window.n_steps' must equal"),
        (lambda m: m["input"].__setitem__("channels", []), r"'input.channels' must hold at least 1"),
        (lambda m: m["input"].__setitem__("units", "furlongs"), r"'input.units' is not a voltage unit"),
        (lambda m: m["side_features"]["std"].__setitem__(0, 0.0), r"'side_features.std' must be positive"),
        (lambda m: m.__setitem__("kind", "ecg-beatz"), r"'kind' must be one of"),
    ],
)
def test_nested_keys_and_entry_types_are_checked_naming_the_key(folder, change, message, capsys):
    # Reliability probe D6: each of these used to end in a traceback (exit 1), some only
    # after streaming had begun.
    _edit(folder, change, reseal=True)
    with pytest.raises(ManifestError, match=message):
        load_manifest(folder)
    assert main(["stream", str(folder), "mitdb:100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biosig-edge: error:") and "Traceback" not in err


def test_an_older_manifest_is_refused_with_the_way_out(folder):
    _edit(folder, lambda m: m.__setitem__("schema", "biosig-edge-manifest/1"))
    with pytest.raises(ManifestError, match="another biosig-edge version: export the run again"):
        load_manifest(folder)


def test_an_artifact_is_size_checked_before_it_is_read(folder, monkeypatch):
    # Reliability probe D12: a 3 GiB file in place of a 9 KB model was read whole (3.2 GB
    # of memory) before its size was compared.
    path = folder / "tflite_int8.tflite"
    path.unlink()
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used
    import pathlib

    def no_read(self):
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(pathlib.Path, "read_bytes", no_read)
    entry = next(
        a for a in json.loads((folder / "manifest.json").read_text())["artifacts"] if a["name"] == "tflite_int8"
    )
    with pytest.raises(ManifestError, match=r"tflite_int8\.tflite: 3221225472 bytes, manifest.json says"):
        verify_artifact(folder, entry)


def test_a_signed_folder_is_trusted_and_an_unsigned_or_foreign_one_refused(folder, tmp_path, capsys):
    private, public = new_keypair(tmp_path / "keys")
    other_private, other_public = new_keypair(tmp_path / "keys", "other")
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ManifestError, match=r"manifest.sig: missing: a trusted key is configured"):
        load_manifest(folder, trusted_key=public)
    sign_folder(folder, private)
    load_manifest(folder, trusted_key=public)  # signed by the trusted key: loads
    with pytest.raises(ManifestError, match="not a valid signature of this manifest"):
        load_manifest(folder, trusted_key=other_public)
    # The signature covers the manifest, whose digest covers every file: a re-sealed
    # manifest (a deliberate edit with a fresh digest) is refused too.
    _edit(folder, lambda m: m["side_features"]["mean"].__setitem__(0, 0.5), reseal=True)
    with pytest.raises(ManifestError, match="not a valid signature"):
        load_manifest(folder, trusted_key=public)
    assert main(["stream", str(folder), "mitdb:100", "--trusted-key", str(public)]) == 2
    assert "not a valid signature" in capsys.readouterr().err
    load_manifest(folder)  # no key configured: digest and hashes only


def test_a_pickled_reference_is_refused_in_one_line(folder, capsys):
    # Reliability probe D10: allow_pickle=False stopped it, but with a traceback.
    buf = io.BytesIO()
    np.savez(buf, lstm_0_kernel=np.array([{"a": 1}], dtype=object))
    data = buf.getvalue()
    (folder / "reference_float32.npz").write_bytes(data)

    def point_at_it(m):
        import hashlib

        entry = next(a for a in m["artifacts"] if a["name"] == "reference_float32")
        entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)

    _edit(folder, point_at_it, reseal=True)
    assert main(["stream", str(folder), "mitdb:100", "--artifact", "reference_float32"]) == 2
    err = capsys.readouterr().err
    assert "reference_float32.npz: cannot be loaded as a npz model" in err and "Traceback" not in err


def test_the_json_schema_and_the_checker_agree(exported):
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    manifest = exported[2]
    jsonschema.validate(manifest, schema)
    m = Manifest.from_dict(manifest)
    assert m.fs_in_hz == 360.0 and m.fs_out_hz == 180.0
    assert (m.window.n_before_samples, m.window.n_after_samples, m.window.n_steps) == (45, 81, 126)
    assert set(schema["required"]) == {k for k in manifest if k in schema["properties"] and k in schema["required"]}
    # What the schema can say, it says too: each of these breaks both.
    for change in (
        lambda d: d.pop("digest"),
        lambda d: d["window"].__setitem__("normalise", "zcore"),
        lambda d: d["input"].__setitem__("min_fs_hz", -1),
    ):
        broken = json.loads(json.dumps(manifest))
        change(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
        with pytest.raises(ManifestError):
            Manifest.from_dict(seal(broken) if "digest" in broken else broken)
