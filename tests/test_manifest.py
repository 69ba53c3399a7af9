"""The manifest is trusted only as far as it is checked: its content by a digest, its keys
to their nested values, its files by size (before reading) and sha256, and with a
trusted key by an Ed25519 signature. Every refusal is one line naming the problem."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.manifest import (
    SCHEMA_PATH,
    ArtifactEntry,
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
        verify_artifact(folder, ArtifactEntry.from_dict(entry))


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


# ------------------------------------------------------------------ synthetic folders (fast)
# A sealed folder with a numpy reference of random weights (tests/synthetic_artifact.py):
# the manifest's checks and the model-against-manifest checks need no trained model.


def _stream_refused(folder, capsys, *options: str) -> str:
    """`biosig-edge stream FOLDER mitdb:100 [OPTIONS]`: exit 2 and one error line (after
    any notes from reading the record); that line."""
    assert main(["stream", str(folder), "mitdb:100", *options]) == 2
    err = capsys.readouterr().err
    # (Reading a WFDB record may print library notes first, each "note:" and its "See ...".)
    errors = [line for line in err.splitlines() if not line.startswith(("biosig-edge: note:", "See "))]
    assert "Traceback" not in err and len(errors) == 1 and errors[0].startswith("biosig-edge: error:"), err
    return errors[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["preprocess"].__setitem__("bands_hz", 5), r"'preprocess.bands_hz' must be list, got 5"),
        (lambda m: m["preprocess"].__setitem__("bands_hz", [[4, 8], [30]]), r"'preprocess.bands_hz' band 1 must be"),
        (lambda m: m["preprocess"].__setitem__("bands_hz", [[4, 100]]), r"band 0 \[4, 100\] must lie in \(0, 90\) Hz"),
        (lambda m: m["preprocess"].__setitem__("decimate", 100000), r"'preprocess.decimate' = 100000 .* alias"),
        (lambda m: m["preprocess"].__setitem__("running_norm_s", -1), r"'preprocess.running_norm_s' must be > 0"),
        (lambda m: m["preprocess"].pop("notch_hz"), r"'preprocess.notch_hz' is missing"),
        (
            lambda m: m["side_features"]["names"].__setitem__(0, "heart_rate"),
            r"'side_features.names' names \['heart_rate'\], which an ecg-beats session does not compute",
        ),
        (lambda m: m.__setitem__("source_run", "runs/x"), r"'source_run' must be dict"),
        (lambda m: m.__setitem__("source_run", {"folder": "runs/x"}), r"'source_run.model_sha256' is missing"),
    ],
)
def test_nested_values_a_device_would_trip_on_are_refused_at_load(tmp_path, capsys, change, message):
    """Reliability probe 484b660, R1 (D6's residual): each of these, re-sealed, ended in a
    TypeError/ValueError traceback in the session or after validate had streamed."""
    from synthetic_artifact import make_folder

    folder = make_folder(tmp_path / "art", edit=change)
    with pytest.raises(ManifestError, match=message):
        load_manifest(folder)
    _stream_refused(folder, capsys)


@pytest.mark.parametrize(
    "kind, change, message",
    [
        # N6.02: 2 names for a 4-output model ended record 208 at its first V beat (IndexError).
        ("ecg-beats", lambda m: m.__setitem__("classes", ["N", "S"]), r"'classes' names 2 classes .* has 4 outputs"),
        ("ecg-beats", lambda m: m.__setitem__("classes", ["N", "S", "V", "F", "Q"]), r"names 5 classes .* 4 outputs"),
        # N3.50: state sizes that disagree with the stream graph (IndexError mid-stream).
        ("eeg-windows", lambda m: m["streaming"].__setitem__("state_sizes", [16, 16]), r"'streaming.state_sizes'"),
        # Side features the model does not take.
        (
            "ecg-beats",
            lambda m: m["side_features"].update(names=["pre_rr_s"], mean=[0.0], std=[1.0]),
            r"does not take the inputs the manifest describes",
        ),
    ],
)
def test_a_manifest_that_disagrees_with_its_model_is_refused_at_load(tmp_path, capsys, kind, change, message):
    from synthetic_artifact import make_folder

    from pipeline.runtime.session import SessionError, open_session

    folder = make_folder(tmp_path / "art", kind=kind, edit=change)
    load_manifest(folder)  # the manifest alone is well-formed
    with pytest.raises(SessionError, match=message):
        open_session(folder, "reference_float32")
    if kind == "ecg-beats":
        err = _stream_refused(folder, capsys, "--artifact", "reference_float32")
        assert "manifest.json" in err


def test_the_synthetic_folder_opens_as_both_kinds(tmp_path):
    """The fixture above is only worth its refusals if the unedited folder loads."""
    from synthetic_artifact import make_folder

    from pipeline.runtime.session import ECGSession, EEGSession, open_session

    assert isinstance(open_session(make_folder(tmp_path / "e"), "reference_float32"), ECGSession)
    assert isinstance(open_session(make_folder(tmp_path / "g", "eeg-windows"), "reference_float32"), EEGSession)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"schema": ' + "9" * 5000 + "}", "cannot be read as JSON"),
        ("{'schema': 1}", "not valid JSON"),
    ],
)
def test_json_python_cannot_hold_is_refused_in_one_line(tmp_path, capsys, text, message):
    """N9: RecursionError and the integer digit limit's ValueError escaped as tracebacks."""
    from synthetic_artifact import make_folder

    folder = make_folder(tmp_path / "art")
    (folder / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_manifest(folder)
    assert message in _stream_refused(folder, capsys)


def test_key_and_signature_files_are_read_bounded_and_only_if_regular(tmp_path, capsys, monkeypatch):
    """N8: --trusted-key /dev/zero and sign --key /dev/zero read until memory ran out; a
    300 MB manifest.sig was read whole."""
    from synthetic_artifact import make_folder

    folder = make_folder(tmp_path / "art")
    private, public = new_keypair(tmp_path / "keys")
    sign_folder(folder, private)
    assert main(["stream", str(folder), "mitdb:100", "--trusted-key", "/dev/zero"]) == 2
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    assert main(["sign", str(folder), "--key", "/dev/zero"]) == 2
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    sig = folder / "manifest.sig"
    with open(sig, "r+b") as f:
        f.truncate(300 << 20)  # sparse
    with pytest.raises(ManifestError, match=r"manifest.sig: 314572800 bytes, too large for the signature"):
        load_manifest(folder, trusted_key=public)
    big_key = tmp_path / "big.pub"
    with open(big_key, "wb") as f:
        f.truncate(1 << 30)
    with pytest.raises(ManifestError, match=r"big.pub: 1073741824 bytes, too large for the key"):
        load_manifest(folder, trusted_key=big_key)


def test_sign_works_while_a_trusted_key_is_configured(tmp_path, monkeypatch, capsys):
    """N10: with BIOSIG_EDGE_TRUSTED_KEY set (as the README suggests, for every command),
    `sign` asked for the very signature it was about to write."""
    from synthetic_artifact import make_folder

    folder = make_folder(tmp_path / "art")
    private, public = new_keypair(tmp_path / "keys")
    monkeypatch.setenv("BIOSIG_EDGE_TRUSTED_KEY", str(public))
    assert main(["sign", str(folder), "--key", str(private)]) == 0
    load_manifest(folder)  # and the environment's key now finds it signed


def test_keys_into_a_file_and_sign_into_a_read_only_folder_are_one_line(tmp_path, capsys):
    """N7: `keys FILE` gave FileExistsError, `sign` into a read-only folder PermissionError."""
    import os
    import subprocess
    import sys

    from synthetic_artifact import make_folder

    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["keys", str(afile)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{afile}: cannot be the key folder" in err
    folder = make_folder(tmp_path / "art")
    private, _ = new_keypair(tmp_path / "keys")
    cmd = [sys.executable, "-m", "pipeline.cli", "sign", str(folder), "--key", str(private)]
    if os.geteuid() == 0:  # root ignores file modes unless its DAC capabilities are dropped
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) not installed: cannot drop root's DAC override")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    os.chmod(folder, 0o555)
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.chmod(folder, 0o755)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"{folder / 'manifest.sig'}: cannot be written: Permission denied" in run.stderr


def test_the_schema_states_the_nested_rules_it_can_as_the_checker_does():
    """manifest.schema.json and Manifest.from_dict in step on the keys R1 added (the slow
    test above holds them together on a real export)."""
    import jsonschema
    from synthetic_artifact import manifest_dict

    schema = json.loads(SCHEMA_PATH.read_text())
    for kind in ("ecg-beats", "eeg-windows"):
        good = seal(manifest_dict(kind))
        jsonschema.validate(good, schema)
        Manifest.from_dict(good)
    base = manifest_dict("ecg-beats")
    base["source_run"] = {"folder": "runs/x", "model_sha256": "0" * 64}
    jsonschema.validate(seal(base), schema)
    Manifest.from_dict(seal(base))
    for change in (
        lambda d: d["preprocess"].__setitem__("bands_hz", 5),
        lambda d: d["preprocess"].__setitem__("bands_hz", [[4.0]]),
        lambda d: d["preprocess"].__setitem__("running_norm_s", 0),
        lambda d: d["side_features"]["names"].__setitem__(0, "heart_rate"),
        lambda d: d.__setitem__("source_run", "runs/x"),
        lambda d: d["source_run"].pop("model_sha256"),
        lambda d: d["source_run"].__setitem__("model_sha256", "xyz"),
    ):
        broken = json.loads(json.dumps(base))
        change(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(seal(broken), schema)
        with pytest.raises(ManifestError):
            Manifest.from_dict(seal(broken))


# --------------------------------------------------------------------------- the typed manifest

REPO = Path(__file__).resolve().parents[1]
#: The rooms that read or write a manifest: each takes the typed :class:`Manifest`.
TYPED_ROOMS = (
    "pipeline/export",
    "pipeline/validate",
    "pipeline/runtime/c_backend.py",
    "pipeline/runtime/session.py",
    "pipeline/runtime/measure.py",
    "pipeline/tools",
    "pipeline/targets",
    "pipeline/cli",
    "firmware_export",
)
#: Functions that still take a dict that is not a manifest read from a folder: the sweep's
#: list of CPU targets before anything is built (pipeline/train/sweep.py) and export's
#: entries before a manifest exists (tests/test_sweep.py). To go when those pass entries.
NOT_MANIFESTS = {("pipeline/runtime/c_backend.py", "pick_library"), ("pipeline/validate/validate.py", "firmware_check")}


def _dict_manifest_uses(path: Path, source: str) -> list[str]:
    """Where ``source`` treats a manifest as a dict: ``manifest[...]``, ``manifest.get(...)``,
    ``manifest.raw``, or a ``manifest`` parameter typed ``dict`` ("file:line what")."""
    import ast

    def named_manifest(node) -> bool:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return "manifest" in name.lower()

    rel = path.relative_to(REPO).as_posix()
    found = []

    def visit(node, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if (rel, inner) not in NOT_MANIFESTS:
                what = None
                if isinstance(child, ast.Subscript) and named_manifest(child.value):
                    what = "manifest[...]"
                elif isinstance(child, ast.Attribute) and child.attr in ("get", "raw", "items", "keys"):
                    what = f"manifest.{child.attr}" if named_manifest(child.value) else None
                elif isinstance(child, ast.arg) and "manifest" in child.arg and child.annotation is not None:
                    what = "manifest: dict" if "dict" in ast.unparse(child.annotation) else None
                if what:
                    found.append(f"{rel}:{child.lineno} {what}")
            visit(child, inner)

    visit(ast.parse(source), "")
    return found


def test_export_validate_the_c_loader_and_the_tools_read_the_manifest_typed_never_as_a_dict():
    """A misspelt key is a type error (mypy), not a KeyError at run time: no module of the
    rooms that read or write a manifest indexes one as a dict."""
    paths = []
    for room in TYPED_ROOMS:
        p = REPO / room
        paths += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert len(paths) > 30
    found = [use for p in paths for use in _dict_manifest_uses(p, p.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "path",
    ["pipeline/runtime/models/ecg-mitdb-1lead/manifest.json", "synthetic-ecg-beats", "synthetic-eeg-windows"],
)
def test_a_manifest_read_and_written_again_is_the_same_bytes(path, tmp_path):
    """The typed manifest keeps everything it reads (report keys, null keys, key order,
    an int where a float is typed), so writing it back gives the file's bytes: a shipped
    folder's digest and signature hold through the typed object."""
    from pipeline.manifest import canonical_json

    if path.startswith("synthetic"):
        from synthetic_artifact import make_folder

        file = make_folder(tmp_path / "art", kind=path.removeprefix("synthetic-")) / "manifest.json"
    else:
        file = REPO / path
    text = file.read_text()
    data = json.loads(text)
    typed = Manifest.from_dict(data, str(file))
    indent = 1 if text.startswith('{\n "') else 2
    assert json.dumps(typed.to_dict(), indent=indent) + ("\n" if text.endswith("\n") else "") == text
    assert canonical_json(typed.to_dict()) == canonical_json(data)


def test_an_int_where_a_float_is_typed_is_written_back_as_the_int():
    from synthetic_artifact import manifest_dict

    m = manifest_dict("ecg-beats")
    m["input"]["valid_range"] = [-10, 10]  # a card may say it so
    m["input"]["min_fs_hz"] = 100
    sealed = seal(m)
    assert json.dumps(Manifest.from_dict(sealed).to_dict()) == json.dumps(sealed)
