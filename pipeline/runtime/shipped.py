"""Models that ship inside the package: a device streams them with no training.

``pipeline/runtime/models/<name>/`` holds a slim artifact folder (``manifest.json`` with every
file's sha256, ``manifest.sig``, and only what a device runs: the TFLite float32 and int8
models and the numpy reference, tens of KB); ``MODELS_KEY`` beside them is
the Ed25519 public key they are signed with. ``biosig-edge stream NAME INPUT`` takes a shipped
model by its name wherever an artifact folder is asked for, and checks its signature against
that key (or the key the user names), so an altered or re-sealed shipped folder is refused.

``python -m pipeline.tools.ship`` writes a folder here from an export and signs it; its
``--rebuild`` retrains one from its own config and compares the decisions before a shipped model
is replaced.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BiosigError

#: Where the shipped folders live (package data).
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The public key every shipped folder is signed with (its private half is not in the repository).
MODELS_KEY = MODELS_DIR / "biosig-edge-models.pub"


class ShippedModelError(BiosigError):
    """An artifact folder named that is neither a folder nor a shipped model."""


def shipped_names() -> list[str]:
    """The names of the shipped models, sorted (each a folder with a manifest)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "manifest.json").is_file())


def resolve_artifact_dir(name_or_path: str | Path) -> tuple[Path, Path | None]:
    """An artifact folder for ``name_or_path``: the folder itself when it exists, else the
    shipped model of that name.

    Returns (folder, key): ``key`` is the public key a shipped folder must be signed with, or
    None for a user's own folder (which is trusted as the user configures it).
    """
    path = Path(name_or_path)
    if path.exists():
        return path, None
    name = str(name_or_path)
    if name in shipped_names():
        return MODELS_DIR / name, MODELS_KEY
    shipped = ", ".join(shipped_names()) or "none"
    raise ShippedModelError(
        f"{name}: no such artifact folder, and no shipped model of that name (shipped: {shipped}; "
        f"make a folder with 'biosig-edge export RUN --out FOLDER')"
    )
