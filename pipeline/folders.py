"""Output folders written whole or not at all, by one process at a time, and the litter
of killed runs cleaned up.

``export`` and ``validate`` build their folder under a hidden temporary name beside it
(``.NAME.partial-PID``) and rename it into place at the end, so nothing half-written is
ever presented as complete. A lock file beside it (``.NAME.lock``, ``flock``) keeps a
second run from writing the same folder at the same time: it is refused at once, naming
the process that holds it (the lock file goes when the run ends). A run killed with
SIGKILL cannot clean up after itself; the next run to the same place removes partial
folders and temporary directories whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import BiosigError


class FolderError(BiosigError):
    """An output folder that cannot be written (exists, locked, not writable)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(name: str, marker: str) -> int | None:
    """The pid in ``.NAME.partial-PID`` or ``biosig-x-PID-...``."""
    try:
        return int(name.split(marker, 1)[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def clean_stale(parent: Path, pattern: str, marker: str) -> list[Path]:
    """Remove entries of ``parent`` matching ``pattern`` whose owning pid is dead."""
    removed = []
    for p in Path(parent).glob(pattern):
        pid = _pid_of(p.name, marker)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


class FolderWriter:
    """Write ``out_dir`` through a temporary folder (``tmp``); :meth:`commit` renames it
    into place, :meth:`abort` removes it; both release the lock.

    The constructor refuses (``FolderError``) an existing ``out_dir`` without ``force``, an
    ``out_dir`` that is a symbolic link or not a folder (even with ``force``), a parent that
    is not a writable folder, and a second writer of the same ``out_dir``; it removes
    partial folders of dead runs.
    """

    def __init__(self, out_dir: str | Path, force: bool = False, what: str = "folder"):
        import fcntl

        self.out_dir = out_dir = Path(out_dir)
        parent = out_dir.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FolderError(f"{out_dir}: cannot create its parent folder: {err.strerror or err}") from None
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise FolderError(f"{out_dir}: {parent} is not a writable folder")
        # What is there is judged now, not at the rename after all the work: --force
        # replaces a folder this tool wrote, never a file, and never follows a symlink (a
        # `latest` link's target is not ours to delete).
        if out_dir.is_symlink():
            raise FolderError(
                f"{out_dir}: is a symbolic link (to {os.readlink(out_dir)}); refusing to replace it: "
                f"give --out the folder itself or a new name"
            )
        if out_dir.exists() and not out_dir.is_dir():
            raise FolderError(f"{out_dir}: exists and is not a folder; refusing to replace it: choose another --out")
        if out_dir.exists() and not force:
            raise FolderError(f"{out_dir}: already exists (use --force to replace it, or --out for another folder)")
        self.lock_path = lock_path = parent / f".{out_dir.name}.lock"
        for _ in range(10):
            try:
                self.lock = open(lock_path, "a+")
            except OSError as err:
                raise FolderError(f"{lock_path}: cannot be created: {err.strerror or err}") from None
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.lock.seek(0)
                holder = self.lock.read().strip() or "another process"
                self.lock.close()
                raise FolderError(
                    f"{out_dir}: another run (pid {holder}) is writing this {what}; wait for it or choose another --out"
                ) from None
            # The holder before us removes the file as it lets go: a lock on a file no longer
            # at that path guards nothing, so open the path again.
            try:
                if os.stat(lock_path).st_ino == os.fstat(self.lock.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            self.lock.close()
        else:
            raise FolderError(f"{lock_path}: could not be locked")
        self.lock.seek(0)
        self.lock.truncate()
        self.lock.write(str(os.getpid()))
        self.lock.flush()
        clean_stale(parent, f".{out_dir.name}.partial-*", ".partial-")
        self.tmp = parent / f".{out_dir.name}.partial-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()

    def commit(self) -> Path:
        try:
            if self.out_dir.is_dir() and not self.out_dir.is_symlink():
                shutil.rmtree(self.out_dir)
            self.tmp.rename(self.out_dir)
        except OSError as err:  # changed under us since the constructor's checks
            raise FolderError(f"{self.out_dir}: cannot be put in place: {err.strerror or err}") from None
        finally:
            self.abort()
        return self.out_dir

    def abort(self) -> None:
        import fcntl

        shutil.rmtree(self.tmp, ignore_errors=True)
        if not self.lock.closed:
            # Removed while still held: whoever locks the old file next sees that it is gone.
            with contextlib.suppress(OSError):
                self.lock_path.unlink()
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()


@contextlib.contextmanager
def atomic_folder(out_dir: str | Path, force: bool = False, what: str = "folder"):
    """Yield a temporary folder that becomes ``out_dir`` when the block succeeds (see
    :class:`FolderWriter`); on an exception ``out_dir`` is left as it was."""
    writer = FolderWriter(out_dir, force, what)
    try:
        yield writer.tmp
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def work_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary directory named ``PREFIX-PID-...``; those of dead processes with the
    same prefix (left by a SIGKILL) are removed first."""
    base = Path(tempfile.gettempdir())
    clean_stale(base, f"{prefix}-*", f"{prefix}-")
    return tempfile.TemporaryDirectory(prefix=f"{prefix}-{os.getpid()}-")
