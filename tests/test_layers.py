"""The rooms and their order, enforced.

Every module of ``pipeline/`` and ``firmware_export/`` belongs to a room (its folder, or
:data:`TOP_LEVEL` for ``pipeline``'s own modules). Imports are read with ``ast``, so one
inside a function (the lazy imports of optional libraries and heavy rooms) counts the same
as one at the top, and nothing is imported to check. The rules:

- an import runs down the layer order :data:`TIERS` or stays in its tier;
- the device rooms (:data:`DEVICE_ROOMS`) never import training or export, even sideways;
- no two rooms import each other, and no modules import each other in a circle.

The order is stated here and quoted in CONTRIBUTING.md (a test holds the two equal).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The layer order, bottom first: a room may import rooms of its own tier and of the tiers
#: below, never above. ``shared`` is ``pipeline``'s small common modules; ``manifest`` is the
#: artifact contract between training and the device.
TIERS: tuple[tuple[str, ...], ...] = (
    ("shared",),
    ("read",),
    ("preprocess",),
    ("window",),
    ("manifest",),
    ("train", "export", "runtime", "firmware_export"),
    ("validate",),
    ("tools", "targets"),
    ("cli",),
)

#: Rooms whose code runs on a device (CPU or microcontroller): they never import these rooms
#: (TensorFlow, training data), even though they share a tier.
DEVICE_ROOMS = ("runtime", "firmware_export")
NOT_ON_A_DEVICE = ("train", "export")

#: The rooms of ``pipeline``'s top-level modules (a new one must be placed here); a folder
#: is its own room (``pipeline/cli/``, the command line, is the room ``cli``).
TOP_LEVEL = {
    "pipeline": "shared",
    "pipeline.cluster": "shared",
    "pipeline.errors": "shared",
    "pipeline.folders": "shared",
    "pipeline.metrics": "shared",
    "pipeline.readme": "shared",
    "pipeline.manifest": "manifest",
}

PACKAGES = ("pipeline", "firmware_export")
ROOMS = {room for tier in TIERS for room in tier}


def order_text(tiers=TIERS) -> str:
    """The order as one line: ``shared < read < preprocess < ...``."""
    return " < ".join(" | ".join(tier) for tier in tiers)


def tier_of(room: str) -> int:
    return next(i for i, tier in enumerate(TIERS) if room in tier)


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages in ``root``."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def room_of(module: str) -> str | None:
    """The room a module belongs to, or None if it has none."""
    parts = module.split(".")
    if parts[0] == "firmware_export":
        return "firmware_export"
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return None


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of a package module in ``path``; a name
    imported from a package resolves to its submodule when there is one."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            target = resolve(name)
            if target is not None and target != module:
                yield node.lineno, target


def graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {imported module: first line that imports it}."""
    known = modules(root)
    edges: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        for line, target in imports(module, path, known):
            edges.setdefault(module, {}).setdefault(target, line)
    return edges


def where(root: Path, module: str, line: int) -> str:
    path = modules(root)[module]
    return f"{path.relative_to(root)}:{line}"


def order_violations(root: Path) -> list[str]:
    """One line per import against the order or the device rule, naming file and line."""
    out = []
    for module, targets in sorted(graph(root).items()):
        src = room_of(module)
        for target, line in sorted(targets.items(), key=lambda kv: kv[1]):
            dst = room_of(target)
            if src is None or dst is None or src == dst:
                continue
            if tier_of(dst) > tier_of(src):
                out.append(
                    f"{where(root, module, line)} imports {target}: {src} may not import {dst}, "
                    f"a later room ({order_text()})"
                )
            elif src in DEVICE_ROOMS and dst in NOT_ON_A_DEVICE:
                out.append(f"{where(root, module, line)} imports {target}: the device room {src} never imports {dst}")
    return out


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def room_cycles(root: Path) -> list[str]:
    """One line per circle of rooms, naming an import of each room edge in it."""
    edges = graph(root)
    rooms: dict[str, dict[str, str]] = {}
    for module, targets in sorted(edges.items()):
        for target, line in sorted(targets.items()):
            a, b = room_of(module), room_of(target)
            if a and b and a != b:
                rooms.setdefault(a, {}).setdefault(b, f"{where(root, module, line)} imports {target}")
    out = []
    for component in cycles({a: dict.fromkeys(bs, 0) for a, bs in rooms.items()}):
        why = "; ".join(rooms[a][b] for a in component for b in sorted(rooms.get(a, {})) if b in component)
        out.append(f"rooms {' <-> '.join(component)} import each other: {why}")
    return out


def module_cycles(root: Path) -> list[str]:
    """One line per circle of modules, naming each import in it."""
    edges = graph(root)
    out = []
    for component in cycles(edges):
        why = "; ".join(
            f"{where(root, a, line)} imports {b}"
            for a in component
            for b, line in sorted(edges[a].items())
            if b in component
        )
        out.append(f"modules {', '.join(component)} import each other: {why}")
    return out


# --- the tree as it is --------------------------------------------------------------------


def test_every_module_has_a_room():
    lost = [m for m in modules(ROOT) if room_of(m) is None]
    assert not lost, f"no room for {lost}: put them in a room's folder, or name their room in TOP_LEVEL"


def test_every_import_runs_down_the_layer_order():
    assert order_violations(ROOT) == []


def test_no_two_rooms_import_each_other():
    assert room_cycles(ROOT) == []


def test_no_modules_import_each_other_in_a_circle():
    assert module_cycles(ROOT) == []


def test_contributing_states_the_same_order():
    assert order_text() in (ROOT / "CONTRIBUTING.md").read_text(), (
        f"CONTRIBUTING.md should quote the layer order as: {order_text()}"
    )


def test_the_device_rooms_import_without_tensorflow():
    """Every module of runtime/ and preprocess/, the manifest and the device's readers import
    with no TensorFlow, Keras, wfdb, pyedflib or scipy.signal (the slow test in
    test_runtime.py also runs a model; this one holds every module, new ones included)."""
    names = [m for m in modules(ROOT) if room_of(m) in ("runtime", "preprocess", "manifest")]
    names += ["pipeline.read.record", "pipeline.read.units", "pipeline.read.channels"]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted({m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'wfdb', 'pyedflib') or m == 'scipy.signal'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert len(names) > 20
    assert result.stdout.strip() == "[]", result.stdout


# --- the checker itself catches what it is for --------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("importer", "line", "imported"),
    [
        ("pipeline/runtime/bench.py", "    from pipeline.validate.heldout import Heldout", "pipeline.validate.heldout"),
        ("pipeline/runtime/bench.py", "    from pipeline.train.model import load_model", "pipeline.train.model"),
        ("firmware_export/check.py", "    from pipeline.train import data", "pipeline.train.data"),
        ("pipeline/read/summary.py", "    import pipeline.window.ecg", "pipeline.window.ecg"),
    ],
)
def test_an_import_against_the_order_is_named_with_its_line(tmp_path, importer, line, imported):
    root = _tree(
        tmp_path,
        {
            importer: f'"""A module."""\n\n\ndef f():\n{line}\n',
            "pipeline/validate/heldout.py": "",
            "pipeline/train/model.py": "",
            "pipeline/train/data.py": "",
            "pipeline/window/ecg.py": "",
        },
    )
    (found,) = order_violations(root)
    assert found.startswith(f"{importer}:5 imports {imported}")


def test_a_lazy_import_circle_is_named(tmp_path):
    # The knot sources/ had: the factory in live.py imported lsl inside a function, and
    # lsl imported live.py at the top.
    root = _tree(
        tmp_path,
        {
            "pipeline/runtime/sources/__init__.py": "",
            "pipeline/runtime/sources/live.py": "def open_live():\n    from pipeline.runtime.sources.lsl import S\n",
            "pipeline/runtime/sources/lsl.py": "from pipeline.runtime.sources.live import Chunk\n",
        },
    )
    assert order_violations(root) == []
    (found,) = module_cycles(root)
    assert "pipeline/runtime/sources/live.py:2 imports pipeline.runtime.sources.lsl" in found
    assert "pipeline/runtime/sources/lsl.py:1 imports pipeline.runtime.sources.live" in found


def test_two_rooms_that_import_each_other_are_named(tmp_path):
    # export and firmware_export share a tier: sideways is allowed, both ways is not.
    root = _tree(
        tmp_path,
        {
            "pipeline/export/export.py": "from firmware_export import build\n",
            "firmware_export/build.py": "def f():\n    from pipeline.export.export import x\n",
        },
    )
    (found,) = room_cycles(root)
    assert "export <-> firmware_export" in found
    assert "firmware_export/build.py:2 imports pipeline.export.export" in found
