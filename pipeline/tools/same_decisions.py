"""Proof that a refactor changed no decision: the same artifact folder streamed by an old
commit's code and by this tree's, event by event.

    python -m pipeline.tools.same_decisions ARTIFACTS --old-commit COMMIT [--records 200 213] [--artifacts ...]

The old commit is checked out with ``git worktree`` into a temporary folder (nothing in
this checkout changes); each record is streamed by ``biosig-edge stream`` from both trees
with the same interpreter, and the decision events (beats or windows: sample, class and
the probabilities' bits) and the signal-quality events are compared. It prints one line per
record and artifact and exits 1 if any differ. The artifact folder must be one both trees
can read (made by the older of the two).

Run it on any change that should leave decisions as they were (a refactor of the session,
the sources or a backend), with the commit before the change as ``--old-commit``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    from pipeline.read.locate import candidate_roots

    return next(root for _, root in candidate_roots() if (root / "mitdb").is_dir())


#: What a decision is: the keys compared, per event type (timestamps and latency are not).
KEYS = {
    "beat": ("sample", "class", "probs", "quality"),
    "window": ("start_sample", "class", "probs", "quality"),
    "signal_quality": ("kind", "start_sample", "end_sample", "channel"),
    "gap": ("start_sample", "end_sample"),
}


def stream(tree: Path, folder: Path, record: str, artifact: str) -> list[tuple]:
    """The decision and quality events of ``biosig-edge stream`` run from ``tree``."""
    cmd = [sys.executable, "-m", "pipeline.cli", "stream", str(folder), record, "--artifact", artifact]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.setdefault("BIOSIG_EDGE_DATA", str(data_root()))  # the old tree may sit outside the project
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(cmd[1:])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    out = []
    for line in done.stdout.splitlines():
        event = json.loads(line)
        keys = KEYS.get(event.get("type"))
        if keys:
            out.append((event["type"], *(json.dumps(event.get(k)) for k in keys)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an artifact folder both commits can read")
    parser.add_argument("--old-commit", required=True, help="the commit before the refactor")
    parser.add_argument("--records", nargs="+", default=["mitdb:200", "mitdb:213"], help="inputs, as for stream")
    parser.add_argument("--artifacts", nargs="+", default=["tflite_float32", "tflite_int8", "onnx_float32"])
    args = parser.parse_args(argv)
    differ = 0
    with tempfile.TemporaryDirectory(prefix="biosig-same-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.old_commit],
            check=True,
            capture_output=True,
        )
        try:
            for record in args.records:
                for artifact in args.artifacts:
                    before = stream(old, args.folder, record, artifact)
                    after = stream(ROOT, args.folder, record, artifact)
                    same = before == after
                    differ += not same
                    n = sum(e[0] in ("beat", "window") for e in after)
                    print(
                        f"{record} {artifact}: {n} decisions, {len(after) - n} quality events: "
                        f"{'identical' if same else 'DIFFERENT'}"
                        + (
                            ""
                            if same
                            else f" (first at event {next(i for i, (a, b) in enumerate(zip(before, after)) if a != b) if len(before) == len(after) else 'count'})"
                        )
                    )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
