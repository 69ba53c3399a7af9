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


def needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (Debian: {'; '.join(PACKAGES.get(t, t) for t in missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {message}")
        pytest.skip(message)


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
