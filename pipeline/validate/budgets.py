"""Budgets: the limits a deployable artifact must meet, from a TOML file.

Keys (each optional; a missing key sets no limit)::

    min_agreement_pct     decisions equal to the float reference's, %
    max_macro_f1_drop_pt  macro-F1 points below the float reference's
    max_p99_latency_ms    99th percentile wall time per decision
    max_size_bytes        model file size
    max_peak_rss_mb       peak resident memory of the device process
    artifacts             the artifacts the limits apply to (default: every one validated
                          but the float reference, which is what the others are held to)

Every task ships a default (``pipeline/validate/budgets/<task>.toml``). Unknown keys and
wrong types are refused, naming the key: a typo must not silently drop a limit.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipeline.errors import BiosigError

BUDGET_DIR = Path(__file__).parent / "budgets"

#: key -> (row field, "min" or "max", unit, what)
LIMITS = {
    "min_agreement_pct": ("agreement_pct", "min", "%", "agreement with the float reference"),
    "max_macro_f1_drop_pt": ("macro_f1_drop_pt", "max", "pt", "macro-F1 drop"),
    "max_p99_latency_ms": ("p99_latency_ms", "max", "ms", "p99 latency per decision"),
    "max_size_bytes": ("size_bytes", "max", "B", "model size"),
    "max_peak_rss_mb": ("peak_rss_mb", "max", "MB", "peak RSS"),
}


class BudgetError(BiosigError):
    """A budget file that cannot be read or holds an unknown key or a wrong type."""


def load_budget(path: str | Path | None, task: str) -> dict:
    """The budget at ``path``, or the task's default. Returns {key: value, "source": path}."""
    path = Path(path) if path else BUDGET_DIR / f"{task}.toml"
    if not path.is_file():
        raise BudgetError(f"{path}: no such budget file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BudgetError(f"{path}: not valid TOML: {e}") from None
    for key, value in data.items():
        if key == "artifacts":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise BudgetError(f"{path}: 'artifacts' must be a list of artifact names")
        elif key not in LIMITS:
            raise BudgetError(f"{path}: unknown key '{key}' (known: {', '.join([*LIMITS, 'artifacts'])})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BudgetError(f"{path}: '{key}' must be a number, got {value!r}")
    return {**data, "source": str(path)}


def check_budget(budget: dict, rows: list[dict], reference: str | None = None) -> list[dict]:
    """Hold each row (one validated artifact) to each limit.

    Returns one result per (artifact, limit): {artifact, key, what, value, limit, unit,
    passed}. An artifact that failed to run fails every limit that governs it.
    """
    governed = budget.get("artifacts")
    unknown = sorted(set(governed or []) - {r["artifact"] for r in rows})
    if unknown:
        raise BudgetError(f"{budget['source']}: 'artifacts' names {unknown}, which were not validated")
    results = []
    for row in rows:
        if (row["artifact"] not in governed) if governed is not None else row["artifact"] == reference:
            continue
        for key, (field, sense, unit, what) in LIMITS.items():
            if key not in budget:
                continue
            value = row.get(field)
            passed = value is not None and (value >= budget[key] if sense == "min" else value <= budget[key])
            results.append({"artifact": row["artifact"], "key": key, "what": what, "value": value,
                            "limit": budget[key], "unit": unit, "passed": bool(passed)})
    return results
