"""sha256 verification against a dataset's ``SHA256SUMS``-style list."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ChecksumError


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks. A file that cannot be read raises
    :class:`ChecksumError` naming it."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while block := fh.read(chunk_bytes):
                digest.update(block)
    except OSError as err:
        raise ChecksumError(f"{path}: cannot be read: {err.strerror or err}") from None
    return digest.hexdigest()


@lru_cache(maxsize=None)
def read_checksum_list(list_path: Path) -> dict[str, str]:
    """Parse ``<hex>  <relative path>`` lines into {relative path: hex}."""
    sums: dict[str, str] = {}
    try:
        text = Path(list_path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ChecksumError(f"{list_path}: cannot be read: {getattr(err, 'strerror', None) or err}") from None
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{list_path}:{line_no}: not a '<sha256>  <file>' line")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


# Hashing the same file twice in one process is wasted work: remember what was verified,
# keyed by (path, size, mtime) so that a file changed on disk is hashed again.
_verified: set[tuple[str, int, int]] = set()


def verify_file(path: Path, root: Path, list_path: Path) -> None:
    """Check one file under ``root`` against the checksum list.

    Raises :class:`ChecksumError` naming the file if it is missing, not listed, or altered.
    """
    import stat as stat_mode

    path = Path(path)
    rel = path.relative_to(root).as_posix()
    # One stat, its errors named: Path.is_file() raises (not False) when a folder on the way
    # cannot be searched (EACCES), which used to end `data check` in a traceback.
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ChecksumError(f"{path}: file is missing") from None
    except OSError as err:
        raise ChecksumError(f"{path}: cannot be read: {err.strerror or err}") from None
    if not stat_mode.S_ISREG(stat.st_mode):
        raise ChecksumError(f"{path}: file is missing (not a regular file)")
    try:
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError as err:
        raise ChecksumError(f"{path}: cannot be read: {err.strerror or err}") from None
    if key in _verified:
        return
    sums = read_checksum_list(Path(list_path))
    if rel not in sums:
        raise ChecksumError(f"{path}: not listed in {list_path}")
    actual = sha256_file(path)
    if actual != sums[rel]:
        raise ChecksumError(
            f"{path}: sha256 {actual[:16]}... does not match {sums[rel][:16]}... in "
            f"{list_path}: the file was altered or damaged"
        )
    _verified.add(key)


def verify_tree(root: Path, list_path: Path, progress=None) -> list[str]:
    """Verify every file of a checksum list; return one problem string per bad file."""
    problems = []
    items = sorted(read_checksum_list(Path(list_path)))
    for rel in progress(items) if progress else items:
        try:
            verify_file(Path(root) / rel, Path(root), list_path)
        except ChecksumError as err:
            problems.append(str(err))
    return problems
