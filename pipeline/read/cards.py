"""Dataset cards: the small declarative TOML files in ``datasets/``.

A card says what a database is (publisher, licence, sampling rate, channels, labels,
splits) and names its checksum list. Code reads facts from the card instead of
repeating them, so the readers, the splits and the tests agree by construction.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

#: ``datasets/`` at the top of the project (the package is installed editable).
CARDS_DIR = Path(__file__).resolve().parents[2] / "datasets"

_REQUIRED = {
    "name": str,
    "title": str,
    "version": str,
    "publisher_url": str,
    "licence": str,
    "citation": list,
    "format": str,
    "fs_hz": float,
    "channels": list,
    "units": str,
    "checksums": str,
    "download": dict,
    "labels": dict,
    "splits": dict,
}
_OPTIONAL = {
    "records": list,
    "subjects": list,
    "expected_counts": dict,
    "samples_per_segment": int,
    "segments_per_set": int,
    "valid_range": list,
    "channel_aliases": dict,
}


@dataclass(frozen=True)
class DatasetCard:
    """One dataset's card. ``raw`` keeps every key for the summary and the manifest."""

    name: str
    title: str
    fs_hz: float
    channels: tuple[str, ...]
    checksums_path: Path
    labels: dict[str, Any]
    splits: dict[str, Any]
    download: dict[str, Any]
    raw: dict[str, Any]


def parse_card(data: dict[str, Any], source: Path) -> DatasetCard:
    """Validate a card's keys and types; raise :class:`ConfigError` naming the key."""
    unknown = set(data) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}")
    for key in _REQUIRED:
        if key not in data:
            raise ConfigError(f"{source}: missing key '{key}'")
    for key, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if key in data:
            value = data[key]
            ok = isinstance(value, (int, float)) if typ is float else isinstance(value, typ)
            if not ok or (typ is int and isinstance(value, bool)):
                raise ConfigError(f"{source}: key '{key}' should be {typ.__name__}, got {type(value).__name__}")
    return DatasetCard(
        name=data["name"],
        title=data["title"],
        fs_hz=float(data["fs_hz"]),
        channels=tuple(data["channels"]),
        checksums_path=source.parent / data["checksums"],
        labels=data["labels"],
        splits=data["splits"],
        download=data["download"],
        raw=data,
    )


@lru_cache(maxsize=None)
def load_card(name: str) -> DatasetCard:
    """Load ``datasets/<name>.toml``."""
    path = CARDS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CARDS_DIR.glob("*.toml"))
        raise ConfigError(f"no dataset card '{name}' in {CARDS_DIR} (known: {known})")
    with path.open("rb") as fh:
        return parse_card(tomllib.load(fh), path)


DATASETS = ("mitdb", "bonn", "eegmat")
