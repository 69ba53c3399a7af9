"""The contract between training and device: ``manifest.json`` in an artifact folder.

Written by ``biosig-edge export``; read by the device runtime and the validation report.
Needs only the standard library: a Raspberry Pi validates it before loading any model.
The schema is ``pipeline/manifest.schema.json`` (JSON Schema, draft 2020-12); this module
checks the same rules by hand so the device needs no jsonschema package, and a test keeps
the two in step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.errors import BiosigError

SCHEMA = "biosig-edge-manifest/1"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


class ManifestError(BiosigError):
    """An artifact folder whose manifest, schema or file hashes do not match."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_REQUIRED = {
    "schema": str, "task": str, "kind": str, "classes": list, "channels": list,
    "fs_in_hz": (int, float), "preprocess": dict, "window": dict, "side_features": dict,
    "split": dict, "artifacts": list, "tools": dict, "created_utc": str,
}
_ARTIFACT_REQUIRED = {
    "name": str, "file": str, "format": str, "precision": str, "status": str,
}
_OK_ARTIFACT_REQUIRED = {"sha256": str, "bytes": int, "inputs": list, "outputs": list}


def check_manifest(manifest: dict, where: str = "manifest.json") -> None:
    """Raise :class:`ManifestError` naming the first key that breaks the schema."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise ManifestError(f"{where}: schema is {manifest.get('schema')!r}, this runtime reads {SCHEMA!r}")
    for key, typ in _REQUIRED.items():
        if key not in manifest:
            raise ManifestError(f"{where}: missing key '{key}'")
        if not isinstance(manifest[key], typ):
            raise ManifestError(f"{where}: key '{key}' has the wrong type ({type(manifest[key]).__name__})")
    for i, art in enumerate(manifest["artifacts"]):
        required = dict(_ARTIFACT_REQUIRED, **(_OK_ARTIFACT_REQUIRED if art.get("status") == "ok" else {}))
        for key, typ in required.items():
            if key not in art or not isinstance(art[key], typ):
                raise ManifestError(f"{where}: artifacts[{i}] ({art.get('name', '?')}): missing or "
                                    f"mistyped '{key}'")
        if "/" in art["file"] or art["file"].startswith("."):
            raise ManifestError(f"{where}: artifacts[{i}]: file '{art['file']}' must be a plain name")


def load_manifest(folder: str | Path, verify_files: bool = True) -> dict:
    """Read and check ``folder/manifest.json``; verify every artifact's size and sha256.

    Raises :class:`ManifestError` naming the file whose hash or size does not match.
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"{path}: missing (is {folder} an artifact folder from 'biosig-edge export'?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: not valid JSON: {err}") from None
    check_manifest(manifest, str(path))
    if verify_files:
        for art in manifest["artifacts"]:
            if art["status"] == "ok":
                verify_artifact(folder, art)
    return manifest


def verify_artifact(folder: Path, art: dict) -> bytes:
    """Return the file's bytes after checking its size and sha256 against the manifest."""
    path = Path(folder) / art["file"]
    if not path.is_file():
        raise ManifestError(f"{path}: missing (listed in manifest.json)")
    data = path.read_bytes()
    if len(data) != art["bytes"]:
        raise ManifestError(f"{path}: {len(data)} bytes, manifest.json says {art['bytes']}")
    digest = sha256_bytes(data)
    if digest != art["sha256"]:
        raise ManifestError(f"{path}: sha256 {digest[:16]}... does not match manifest.json "
                            f"({art['sha256'][:16]}...): the file was altered; refusing to load it")
    return data


def shipping_artifacts(manifest: dict) -> list[str]:
    """The float32 and int8 model of each interpreter (LiteRT, ONNX Runtime) that the
    task's streaming session runs, those that exported: what one would put on a device.

    ECG sessions classify whole beat windows; EEG sessions carry windows chunk by chunk
    through the ``stream_*`` graphs.
    """
    prefix = "" if manifest["kind"] == "ecg-beats" else "stream_"
    ok = {a["name"] for a in manifest["artifacts"] if a["status"] == "ok"}
    names = [f"{prefix}{n}" for n in ("tflite_float32", "tflite_int8", "onnx_float32", "onnx_dynamic_int8")]
    return [n for n in names if n in ok]
