"""Ship a model inside the package, or check that a rebuild decides as the shipped one does.

    python -m pipeline.tools.ship ARTIFACTS --name ecg-mitdb-1lead --key PRIVATE.pem
    python -m pipeline.tools.ship --compare ecg-mitdb-1lead OTHER_ARTIFACTS [--records 100,200]
    python -m pipeline.tools.ship --rebuild ecg-mitdb-1lead --out DIR

The first copies what a device runs out of an export (:data:`DEVICE_ARTIFACTS`) into
``pipeline/runtime/models/NAME/``, lists only those in the manifest, seals it and signs it with
the maintainer's key; the folder's public key must be ``pipeline/runtime/models/
biosig-edge-models.pub`` (the key pair is made once with ``biosig-edge keys``; the private half
never enters the repository; a new maintainer makes a new pair and re-signs every folder).

``--compare`` streams held-out records through the shipped folder and another one (the same
artifact of each) and prints how many decisions agree: run it before a shipped model is
replaced. ``--rebuild`` trains the shipped model's task again from the config recorded in its
manifest, exports it into DIR and compares.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from pipeline.errors import BiosigError
from pipeline.manifest import Manifest, read_manifest, sign_folder, write_manifest
from pipeline.runtime.shipped import MODELS_DIR, MODELS_KEY, resolve_artifact_dir

#: Whole-window models a device runs: the interpreter's float and int8 and the numpy reference
#: (no interpreter at all); EEG folders stream their chunk-plus-state graphs. The generated C
#: does not ship: its sources would copy firmware_export/runtime, and its shared libraries are
#: build outputs per architecture (`biosig-edge export` makes them from the run).
DEVICE_ARTIFACTS = ("tflite_float32", "tflite_int8", "reference_float32")
#: What an EEG session streams (chunk-plus-state graphs); ECG sessions run whole windows.
EEG_DEVICE_ARTIFACTS = ("stream_tflite_float32", "stream_tflite_int16x8")


def ship(artifacts: str | Path, name: str, private_key: str | Path, models_dir: Path = MODELS_DIR) -> Path:
    """Copy the device artifacts of ``artifacts`` into ``models_dir/name``, seal and sign it.

    Returns the shipped folder. Refuses a key whose public half is not ``MODELS_KEY``, so
    what ships always verifies against the key in the repository."""
    src = Path(artifacts)
    manifest = read_manifest(src, check_signature=False)
    wanted = DEVICE_ARTIFACTS + (EEG_DEVICE_ARTIFACTS if manifest.kind.startswith("eeg") else ())
    kept = tuple(a for a in manifest.artifacts if a.name in wanted and a.ok)
    out = models_dir / name
    tmp = models_dir / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for a in kept:
        shutil.copy2(src / a.file, tmp / a.file)
    run = _source_run_config(manifest)
    # No machine path ships: the run folder is named, not located.
    source_run = manifest.source_run and replace(manifest.source_run, folder=Path(manifest.source_run.folder).name)
    shipped = {"name": name, "task": manifest.task, "profile": run.get("profile"), "seed": run.get("seed")}
    slim = replace(manifest, artifacts=kept, source_run=source_run, shipped=shipped, digest="")
    write_manifest(tmp, slim, indent=1, newline=True)
    sign_folder(tmp, private_key)
    read_manifest(tmp, trusted_key=MODELS_KEY if models_dir == MODELS_DIR else None)  # verifies, or raises
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _source_run_config(manifest: Manifest) -> dict:
    """The profile and seed of the run an export came from (its run.json), for --rebuild."""
    run_json = Path(manifest.source_run.folder if manifest.source_run else "") / "run.json"
    try:
        run = json.loads(run_json.read_text())
    except (OSError, ValueError):
        return {}
    return {"profile": run.get("profile"), "seed": run.get("config", {}).get("seed")}


def rebuild(shipped: str, out: Path, data_dir=None) -> Path:
    """Train the shipped model's task again (its task, profile and seed), export it into
    ``out`` and return the artifact folder, for :func:`compare`."""
    from pipeline.export.export import export_run
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    folder, key = resolve_artifact_dir(shipped)
    info = read_manifest(folder, trusted_key=key).shipped or {}
    if not info.get("task") or not info.get("profile"):
        raise BiosigError(f"{folder}/manifest.json: 'shipped' does not say which task and profile made it")
    cfg = load_config(info["task"], info["profile"], overrides={"seed": info["seed"]} if info.get("seed") else None)
    run_dir = train_task(cfg, out / "run", data_dir)
    return export_run(run_dir, out / "artifacts", data_dir)


def compare(shipped: str, other: str | Path, records: list[str] | None, artifact: str, seconds: float) -> dict:
    """Decisions of the shipped folder and ``other`` on the same held-out records.

    Returns {"records": [...], "decisions": n, "equal": n, "equal_pct": float}."""
    from pipeline.read.datasets import adapter
    from pipeline.runtime.session import open_session

    folder, key = resolve_artifact_dir(shipped)
    manifest = read_manifest(folder, trusted_key=key)
    if manifest.dataset is None:
        raise BiosigError(f"{folder}/manifest.json: names no dataset to read held-out records from")
    data = adapter(manifest.dataset)
    ids = records or data.heldout_ids(list(manifest.split.test))[:3]
    n = equal = 0
    for rid in ids:
        rec = data.record(rid)
        x = rec.signal[: int(seconds * rec.fs_hz)] if seconds else rec.signal
        runs = []
        for f in (folder, Path(other)):
            s = open_session(f, artifact, source=rec.spec)
            events = s.push(x) + s.flush()
            runs.append(
                [(e.get("sample", e.get("end_sample")), e["class"]) for e in events if e["type"] in ("beat", "window")]
            )
        a, b = runs
        n += max(len(a), len(b))
        equal += len(set(a) & set(b))
    return {"records": ids, "decisions": n, "equal": equal, "equal_pct": 100.0 * equal / max(n, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.tools.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts", nargs="?", help="an export's artifact folder to ship")
    p.add_argument("--name", help="the shipped model's name (default: the task)")
    p.add_argument("--key", help="the maintainer's Ed25519 private key (PEM)")
    p.add_argument("--compare", nargs=2, metavar=("SHIPPED", "OTHER"), help="decisions of a shipped model vs a folder")
    p.add_argument("--rebuild", metavar="SHIPPED", help="train a shipped model again into --out and compare")
    p.add_argument("--out", type=Path, help="folder for --rebuild's run and artifacts")
    p.add_argument("--records", help="comma-separated held-out record ids for --compare (default: the first 3)")
    p.add_argument("--artifact", default="tflite_float32", help="the artifact compared (default tflite_float32)")
    p.add_argument("--seconds", type=float, default=0.0, help="compare only the first SECONDS of each record")
    args = p.parse_args(argv)
    try:
        if args.rebuild:
            if not args.out:
                p.error("--rebuild needs --out DIR")
            other = rebuild(args.rebuild, args.out)
            args.compare = [args.rebuild, str(other)]
        if args.compare:
            shipped, other_dir = args.compare
            records = args.records.split(",") if args.records else None
            r = compare(shipped, other_dir, records, args.artifact, args.seconds)
            print(
                f"{args.compare[0]} vs {args.compare[1]} ({args.artifact}), records {', '.join(r['records'])}: "
                f"{r['equal']} of {r['decisions']} decisions equal ({r['equal_pct']:.2f} %)"
            )
            return 0
        if not (args.artifacts and args.key):
            p.error("give ARTIFACTS and --key (or --compare SHIPPED OTHER)")
        name = args.name or read_manifest(args.artifacts, check_signature=False).task
        out = ship(args.artifacts, name, args.key)
        size_kb = sum(f.stat().st_size for f in out.iterdir()) / 1024
        print(f"shipped {name}: {out} ({len(list(out.iterdir()))} files, {size_kb:.0f} KB), signed")
        return 0
    except BiosigError as err:
        print(f"ship: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
