"""Budgets: the limits a deployable artifact must meet, from a TOML file.

Keys (each optional; a missing key sets no limit)::

    min_agreement_pct      decisions equal to the float reference's, % (0-100)
    max_macro_f1_drop_pt   macro-F1 points below the float reference's (0-100)
    max_p99_latency_ms     99th percentile wall time per decision
    max_p99_latency_ratio  the same, divided by the float reference's in the same run:
                           a limit that a busy machine does not make fail
    max_size_bytes         model file size
    max_peak_rss_mb        peak resident memory of the device process
    artifacts              the artifacts the limits apply to (default: every one validated
                           but the float reference, which is what the others are held to)

Every task ships a default (``pipeline/validate/budgets/<task>.toml``). Unknown keys,
wrong types, limits out of range (negative, NaN, a percentage above 100), a budget with
no limit and an empty ``artifacts`` list are refused, naming the key: a typo must not
silently drop a limit, nor a nonsense limit blame an artifact.
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
    "max_p99_latency_ratio": ("p99_latency_ratio", "max", "x ref", "p99 latency per decision / the reference's"),
    "max_size_bytes": ("size_bytes", "max", "B", "model size"),
    "max_peak_rss_mb": ("peak_rss_mb", "max", "MB", "peak RSS"),
}
#: key -> (lowest, highest) a limit may sensibly take.
RANGES = {"min_agreement_pct": (0.0, 100.0), "max_macro_f1_drop_pt": (0.0, 100.0)}
#: Limits a loaded machine inflates: a miss measured under load is reported, not counted.
TIMING = {"max_p99_latency_ms"}


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
        else:
            low, high = RANGES.get(key, (0.0, float("inf")))
            if not (low <= value <= high) or (key.startswith("max_") and key not in RANGES and value <= 0):
                raise BudgetError(
                    f"{path}: '{key}' = {value} is not a sensible limit "
                    f"(it must lie in [{low:g}, {high:g}]{'' if key in RANGES else ', above 0'})"
                )
    if not any(key in LIMITS for key in data):
        raise BudgetError(f"{path}: sets no limit (keys: {', '.join(LIMITS)}); an empty budget would pass everything")
    if data.get("artifacts") == []:
        raise BudgetError(f"{path}: 'artifacts' is empty: the limits would apply to nothing")
    return {**data, "source": str(path)}


def check_budget_artifacts(budget: dict, names: list[str]) -> None:
    """Refuse, before anything runs, a budget whose ``artifacts`` names one not validated."""
    unknown = sorted(set(budget.get("artifacts") or []) - set(names))
    if unknown:
        raise BudgetError(
            f"{budget['source']}: 'artifacts' names {unknown}, which are not among the artifacts "
            f"validated ({', '.join(names)})"
        )


def check_budget(budget: dict, rows: list[dict], reference: str | None = None, loaded: bool = False) -> list[dict]:
    """Hold each row (one validated artifact) to each limit.

    Returns one result per (artifact, limit): {artifact, key, what, value, limit, unit,
    passed, counted}. An artifact that failed to run fails every limit that governs it.
    With ``loaded`` (the machine was busy while measuring), an absolute timing limit that
    is missed is reported with ``counted`` False: the ratio limits measure speed there.
    """
    governed = budget.get("artifacts")
    check_budget_artifacts(budget, [r["artifact"] for r in rows])
    results = []
    for row in rows:
        if (row["artifact"] not in governed) if governed is not None else row["artifact"] == reference:
            continue
        for key, (field, sense, unit, what) in LIMITS.items():
            if key not in budget:
                continue
            value = row.get(field)
            passed = value is not None and (value >= budget[key] if sense == "min" else value <= budget[key])
            counted = passed or not (loaded and key in TIMING and row.get("status") == "ok")
            results.append(
                {
                    "artifact": row["artifact"],
                    "key": key,
                    "what": what,
                    "value": value,
                    "limit": budget[key],
                    "unit": unit,
                    "passed": bool(passed),
                    "counted": bool(counted),
                }
            )
    return results
