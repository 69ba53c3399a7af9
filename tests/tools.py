"""Tests that need a tool outside Python (a compiler, an emulator) ask for it here: without
it they skip and say which package brings it, but under CI=true a missing tool fails."""

from __future__ import annotations

import os
import shutil

import pytest

from firmware_export.build import PACKAGES as FIRMWARE_PACKAGES

#: tool -> the Debian package(s) that bring it (.ci/run installs them)
PACKAGES = {
    **FIRMWARE_PACKAGES,
    "qemu-aarch64": "qemu-user (bookworm-backports: QEMU 10)",
    "apt-get": "apt",
    "dpkg": "dpkg",
}


def missing_message(missing: list[str]) -> str:
    return f"{', '.join(missing)} not installed (Debian: {'; '.join(PACKAGES.get(t, t) for t in missing)})"


def needs(*tools: str) -> None:
    """Skip the test unless every tool is installed (naming the package); under CI=true
    a missing tool fails it."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = missing_message(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {message}")
        pytest.skip(message)


def has(tool: str) -> bool:
    """Whether ``tool`` is installed, for a test that checks what it can and demands the
    rest only where the tool is (export builds the aarch64 library only with its cross
    compiler); under CI=true a missing tool fails the test, as with :func:`needs`."""
    if shutil.which(tool) is not None:
        return True
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and {missing_message([tool])}")
    return False


def needs_module(module: str, extra: str) -> None:
    """A Python library a test needs (pylsl, brainflow, pyserial): importable, or skip
    naming the extra that brings it; under CI=true its absence (or a library that cannot
    load, such as liblsl missing from the wheel) is a failure."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as err:  # ImportError, or OSError/RuntimeError from a native library
        message = f"{module} cannot be loaded ({type(err).__name__}: {err}); pip install 'biosig-edge[{extra}]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {message}")
        pytest.skip(message)
