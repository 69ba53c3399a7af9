"""Where the recordings are, and how a fresh machine gets them.

Order of search for a dataset folder ``<root>/<name>`` (for example ``<root>/mitdb``):

1. the ``--data-dir`` option (``data_dir`` argument);
2. the ``BIOSIG_EDGE_DATA`` environment variable;
3. ``../shared/data`` beside the project, when present;
4. the cache folder (``BIOSIG_EDGE_CACHE`` or ``~/.cache/biosig-edge``), filled by
   downloading from the publisher when ``download=True``.

Files are never written into folders 1-3: readers only read them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from pipeline.errors import DataUnavailableError
from pipeline.read.cards import DatasetCard, load_card

ENV_DATA = "BIOSIG_EDGE_DATA"
ENV_CACHE = "BIOSIG_EDGE_CACHE"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "biosig-edge")) / "data"


def candidate_roots(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The data roots in search order, each with where it came from."""
    roots = []
    if data_dir is not None:
        roots.append(("--data-dir", Path(data_dir)))
    if os.environ.get(ENV_DATA):
        roots.append((ENV_DATA, Path(os.environ[ENV_DATA])))
    if SHARED_DATA.is_dir():
        roots.append(("../shared/data", SHARED_DATA))
    roots.append(("cache", cache_root()))
    return roots


def dataset_dir(name: str, data_dir: str | Path | None = None, download: bool = False) -> Path:
    """Return the folder holding dataset ``name`` (``mitdb``, ``bonn``, ``eegmat``).

    An explicit ``data_dir`` wins and is never skipped over: if it lacks the dataset the
    error names it, rather than silently reading some other copy.
    """
    card = load_card(name)
    roots = candidate_roots(data_dir)
    if data_dir is not None:
        roots = roots[:1]
    for _origin, root in roots:
        folder = root / name
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    if download and data_dir is None:
        return fetch(card, cache_root() / name)
    looked = ", ".join(f"{root / name} ({origin})" for origin, root in roots)
    raise DataUnavailableError(
        f"dataset '{name}' not found; looked in: {looked}. Point --data-dir or "
        f"{ENV_DATA} at a folder holding '{name}/', or run "
        f"'biosig-edge data fetch {name}' on a machine with internet access."
    )


def fetch(card: DatasetCard, target: Path) -> Path:
    """Download ``card``'s files from the publisher into ``target`` and return it.

    Fails with :class:`DataUnavailableError` (not a traceback) when the publisher cannot
    be reached, leaving nothing half-written behind in ``target``.
    """
    from pipeline.read.checksums import read_checksum_list

    method = card.download["method"]
    files = sorted(read_checksum_list(card.checksums_path))
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        if method == "physionet":
            _fetch_physionet(card.download["database"], files, partial)
        elif method == "manual-zip":
            _unpack_zips(card, target.parent, partial)
        else:
            raise DataUnavailableError(f"card {card.name}: unknown download method '{method}'")
    except DataUnavailableError:
        raise
    except Exception as err:  # network, HTTP and file errors all end the same way
        raise DataUnavailableError(
            f"could not download '{card.name}' from {card.raw['publisher_url']}: "
            f"{type(err).__name__}: {err}. This machine may be offline; download the files "
            f"elsewhere and point --data-dir or {ENV_DATA} at them."
        ) from None
    partial.rename(target)
    return target


def _fetch_physionet(database: str, files: list[str], dest: Path) -> None:
    import wfdb  # training-side dependency, imported only when needed

    wfdb.dl_files(database, str(dest), files, keep_subdirs=False, overwrite=False)


def _unpack_zips(card: DatasetCard, search_dir: Path, dest: Path) -> None:
    archives = card.download["archives"]
    missing = [name for name in archives.values() if not (search_dir / name).is_file()]
    if missing:
        raise DataUnavailableError(
            f"the '{card.name}' archives {missing} are not in {search_dir}. The publisher "
            f"serves them from {card.raw['publisher_url']}; download them there by hand, "
            f"put them in {search_dir} and run the command again."
        )
    for set_name, archive in archives.items():
        with zipfile.ZipFile(search_dir / archive) as zf:
            for member in zf.namelist():
                if member.endswith("/"):
                    continue
                out = dest / set_name / Path(member).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(member))
