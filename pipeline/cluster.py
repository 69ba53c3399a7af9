"""Ray, for the commands that can spread their work over a cluster (``sweep``,
``validate --ray``): refuse a dead address in seconds, and a missing Ray in one line.

Here, below every room, because training (sweeps) and validation (records streamed one
task each) both use it and neither may import the other's module for it. Ray itself is
imported only by :func:`import_ray`, inside the command that asked for it.
"""

from __future__ import annotations

import os
import socket
from types import ModuleType

from pipeline.errors import BiosigError

#: What installs Ray (the ``sweep`` extra of pyproject.toml).
INSTALL_RAY = "pip install '.[sweep]'"


class ClusterError(BiosigError):
    """Ray cannot be used: it is not installed, or nothing answers at the address."""


def check_address(
    address: str,
    timeout_s: float = 10.0,
    error: type[BiosigError] = ClusterError,
    without: str = "leave --address out to run on this machine",
) -> None:
    """Refuse a Ray address nothing answers at, within ``timeout_s`` (``ray.init`` would
    wait for minutes): ``HOST:PORT`` or ``ray://HOST:PORT``. ``error`` is the class raised
    (the command's own); ``without`` says how to do without the cluster."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise error(f"Ray address '{address}': expected HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        raise error(
            f"Ray address '{address}' does not answer ({err}); start the cluster (ray start --head) or {without}"
        ) from None


def import_ray(option: str) -> ModuleType:
    """The ``ray`` module, or a one-line refusal naming ``option`` (the command-line
    option that asked for it) and how to install Ray."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every worker's line, not "repeated 3x"
    try:
        import ray
    except ImportError:
        raise ClusterError(f"{option} needs Ray, which is not installed here: {INSTALL_RAY}") from None
    return ray
