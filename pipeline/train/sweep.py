"""Searches of architecture and training settings on Ray Tune, under the device's budget,
each trial scored by record-level CV.

    biosig-edge sweep ecg-mitdb --trials 20 [--address HOST:PORT] [--space FILE] [--out FILE]

Local Ray on this machine by default (``ray.init(num_cpus=2)``), a running Ray cluster
when given its address. In order:

1. **Trials are sampled** in the driver from the search space, seeded by the task's seed
   (Latin hypercube: with few trials every choice and every stretch of a range is tried).
2. **Each architecture is costed before any training.** An architecture (LSTM widths and
   depth, dense width, window length and rate, channels, side features, the causal filter)
   fixes the generated C's flash, RAM and instructions per decision; its weights do not.
   For each distinct architecture the model is built untrained
   (:func:`pipeline.train.model.build_model`), generated as float32 and int8 C the way
   ``biosig-edge export`` does (:mod:`firmware_export.c_model`), and measured the way the
   validation report measures an exported folder: :func:`firmware_export.build.cortex_m4_check`
   (Cortex-M4 flash, RAM with stack, instructions per decision under QEMU, on real windows
   of the first training record), and the C backend's microseconds per decision on this
   CPU (the shared library the backend would load here, a median over
   :data:`US_DECISIONS` decisions; reported, never a budget). Costs are cached by
   architecture. A trial over :data:`BUDGET` (int8 C: flash, RAM with stack, ms per
   decision at :data:`MCU_CLOCK_HZ`) is reported and never trained, nor chosen. Without
   QEMU or arm-none-eabi-gcc the sweep says so and costs what it can.
3. **The windows are read once per distinct window/preprocess setting** (``window.*``,
   ``preprocess.*`` keys change them) and shared with the trials through Ray's object
   store.
4. **Each trial trains the task's CV folds** inside the training split
   (:func:`pipeline.train.fit.cross_validate`), reporting each epoch's pooled out-of-fold
   score without offsets to Ray Tune's ASHA scheduler, which stops trials that trail at
   its rungs (epochs :data:`ASHA_GRACE_EPOCHS` x :data:`ASHA_REDUCTION`^k). A finished
   trial's score is CV's selection score (``cv["score"]``); no trial ever sees the
   held-out split (DS2 is not even read). Each trial is seeded with the task's seed.
5. **Output**, next to the best config's TOML (which ``biosig-edge train TASK --config
   FILE`` takes): ``<stem>-pareto.md`` (every trial with its CV score, epochs, int8 flash,
   RAM, M4 ms, C us per decision, whether within budget and on the Pareto front of CV
   score vs M4 ms vs flash), ``<stem>-pareto.png`` (CV score vs M4 ms, marker area by
   flash, over budget in grey, the front joined) and ``<stem>-trials.json`` (all of it).

Not in scope: a causal convolution front end before the LSTM. The C runtime
(``firmware_export/runtime/bse_lstm.c``) computes the causal filter, LSTM layers and a
dense head, and has no convolution layer, so no model the sweep tries could be exported;
the space holds no conv keys.

A search space file (TOML) maps ``section.key`` to one distribution::

    ["train.learning_rate"]
    loguniform = [0.0005, 0.005]
    ["model.lstm_units"]
    choice = [[8], [16], [12, 12]]
    ["window.after_s"]
    choice = [0.35, 0.45]
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BiosigError, ConfigError
from pipeline.train.config import TaskConfig, load_config


class SweepError(BiosigError):
    """A sweep cannot start or finish (no Ray cluster at the address, every trial failed
    or over the device budget)."""


#: Sections a trial may change. ``window`` and ``preprocess`` change the windows: the
#: driver reads them once per distinct setting. ``data`` is never sampled: every trial is
#: scored on the same folds.
SWEEPABLE = ("train", "model", "window", "preprocess")

#: Distributions a space file may name.
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")

#: The default space per task kind (the task's own config is the centre).
DEFAULT_SPACE = {
    "train.learning_rate": {"loguniform": [5e-4, 5e-3]},
    "train.max_majority_per_epoch": {"choice": [6000, 12000, 20000]},
    "train.class_weight": {"choice": ["sqrt", "balanced"]},
    "model.lstm_units": {"choice": [[12], [16], [20]]},
    "model.dropout": {"uniform": [0.1, 0.5]},
    "model.lstm_input_dropout": {"uniform": [0.0, 0.3]},
}

#: The device budget (issue 20), on the int8 generated C for a Cortex-M4: flash (code +
#: const weights), RAM (static + the state struct + the stack bound) and time per decision
#: at :data:`MCU_CLOCK_HZ`. 1 KB = 1024 bytes.
BUDGET = {"flash_kb": 64.0, "ram_kb": 16.0, "m4_ms": 20.0}
#: The clock the validation report turns instructions into time with
#: (``pipeline.validate.validate.MCU_CLOCK_HZ``; a test holds the two equal: validate sits
#: above train and cannot be imported here).
MCU_CLOCK_HZ = 64e6
#: The generated C's prefix, as export writes it (``pipeline.export.export.C_PREFIX``; a
#: test holds the two equal: export imports train, so train cannot import export).
C_PREFIX = "bse"
#: Real windows (of the first training record) each architecture is run on under QEMU.
COST_WINDOWS = 8
#: Decisions the C backend's time per decision is the median of.
US_DECISIONS = 300
#: ASHA: the first rung (epochs) and the factor between rungs; a trial below the top
#: 1/ASHA_REDUCTION of those that reached a rung is stopped there.
ASHA_GRACE_EPOCHS = 2
ASHA_REDUCTION = 3


def load_space(path: str | Path | None) -> dict:
    """A search space ({"section.key": {distribution: args}}), from a TOML file or the default."""
    if path is None:
        return dict(DEFAULT_SPACE)
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None


def _section_fields() -> dict[str, set[str]]:
    from pipeline.train.config import ModelConfig, PreprocessConfig, TrainConfig, WindowConfig

    classes = {"train": TrainConfig, "model": ModelConfig, "window": WindowConfig, "preprocess": PreprocessConfig}
    return {section: {f.name for f in dataclasses.fields(cls)} for section, cls in classes.items()}


def check_space(space: dict, source: str = "search space") -> None:
    """Refuse a key that is not a field of a sweepable section, or an unknown
    distribution, naming it (before Ray starts)."""
    fields = _section_fields()
    if not space:
        raise ConfigError(f"{source}: empty")
    for key, dist in space.items():
        section, _, name = key.partition(".")
        if section not in SWEEPABLE or name not in fields[section]:
            known = sorted(f"{s}.{n}" for s in SWEEPABLE for n in fields[s])
            raise ConfigError(f"{source}: unknown key '{key}' (a trial may change: {', '.join(known)})")
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise ConfigError(f"{source}: '{key}' must be one table entry, one of {DISTRIBUTIONS}, got {dist!r}")
        kind, args = next(iter(dist.items()))
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            raise ConfigError(f"{source}: '{key}': {kind} takes {'a list' if kind == 'choice' else '[low, high]'}")


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def _python(v):
    """numpy scalars -> Python (TOML, JSON and config checks take Python values)."""
    return v.item() if isinstance(v, np.generic) else v


def sample_trials(space: dict, n: int, seed: int) -> list[dict]:
    """``n`` parameter sets ({"section.key": value}) drawn from ``space``, seeded.

    Latin hypercube per key: a choice's options each appear n/k times (rounded), shuffled;
    a range is cut into n equal strata (in log space for loguniform), one draw in each,
    shuffled. ``randint`` draws integers in [low, high), as Ray Tune's does.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {}
    for key in sorted(space):
        kind, args = next(iter(space[key].items()))
        if kind == "choice":
            idx = np.resize(rng.permutation(len(args)), n)
            column = [json.loads(json.dumps(args[int(i)])) for i in rng.permutation(idx)]
        else:
            lo, hi = (math.log(args[0]), math.log(args[1])) if kind == "loguniform" else (args[0], args[1])
            u = (rng.permutation(n) + rng.uniform(size=n)) / n
            values = lo + u * (hi - lo)
            if kind == "loguniform":
                values = np.exp(values)
            column = [int(min(math.floor(v), args[1] - 1)) for v in values] if kind == "randint" else list(values)
        columns[key] = [_python(v) for v in column]
    return [{key: columns[key][i] for key in space} for i in range(n)]


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a Ray address nothing answers at, within ``timeout_s`` (ray.init would wait
    for minutes): ``HOST:PORT`` or ``ray://HOST:PORT`` (:func:`pipeline.cluster.check_address`)."""
    from pipeline.cluster import check_address as check

    check(address, timeout_s, error=SweepError, without="leave --address out to sweep on this machine")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def config_toml(cfg: TaskConfig, comment: str = "") -> str:
    """A TaskConfig as a TOML file ``load_config`` reads back to an equal config (None
    values, which TOML cannot hold, are left out: they are the defaults)."""
    d = cfg.to_dict()
    d.pop("profile")
    lines = [f"# {line}" for line in comment.splitlines()]
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    lines += [f"{k} = {_toml_value(v)}" for k, v in d.items() if k not in tables and v is not None]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def merged_config(base: dict, params: dict) -> dict:
    """The task's config (as a dict) with a trial's ``params`` ({"section.key": value})."""
    merged = json.loads(json.dumps(base))
    for section, values in _nested(params).items():
        merged[section].update(values)
    return merged


def window_key(cfg: TaskConfig) -> str:
    """What the windows depend on in a trial's config: its window and preprocess tables."""
    return json.dumps({"window": dataclasses.asdict(cfg.window), "preprocess": dataclasses.asdict(cfg.preprocess)})


# ----------------------------------------------------------------------- device cost


def architecture(cfg: TaskConfig, n_steps: int, n_channels: int, n_side: int, fs_in_hz: float) -> dict:
    """What fixes a model's generated C (sizes and work per decision), weights aside: the
    LSTM and dense widths, the window (n_steps, n_channels), side features, classes and
    the preprocessing (filter sections, decimation, running normalisation)."""
    pre = cfg.preprocess_spec(fs_in_hz).to_dict()
    return {
        "lstm_units": list(cfg.model.lstm_units),
        "dense_units": int(cfg.model.dense_units),
        "n_steps": int(n_steps),
        "n_channels": int(n_channels),
        "n_side": int(n_side),
        "n_classes": len(cfg.classes),
        "preprocess": pre,
    }


def architecture_key(arch: dict) -> str:
    return json.dumps(arch, sort_keys=True)


def within_budget(cost: dict, budget: dict | None = None) -> bool | None:
    """True if every measured int8 figure is within ``budget`` (default :data:`BUDGET`) and
    all were measured; False if any measured one is over; None if none is over but some
    could not be measured (a tool missing)."""
    budget = BUDGET if budget is None else budget
    values = {key: cost.get(key) for key in budget}
    if any(v is not None and v > budget[key] for key, v in values.items()):
        return False
    return None if any(v is None for v in values.values()) else True


def _us_per_decision(src: Path, workdir: Path, x: np.ndarray, side: np.ndarray, n_decisions: int) -> dict:
    """The C backend's time per decision on this CPU: the shared library it would load here
    (:func:`pipeline.runtime.c_backend.pick_library` over export's targets), one window per
    call as an ECG session calls it; the median over ``n_decisions`` calls, in us."""
    import platform

    from firmware_export import build
    from pipeline.runtime.c_backend import LIBRARY_FORMAT, CLibrary, pick_library

    candidates = {
        "artifacts": [
            {
                "format": LIBRARY_FORMAT,
                "source": "c",
                "status": "ok",
                "architecture": arch,
                "cpu_features": features,
                "target": target,
            }
            for target, (arch, _, features) in build.CPU_LIBRARIES.items()
        ]
    }
    entry = pick_library(candidates, "c")
    if entry is None:
        return {"skipped": f"no CPU library target for {platform.machine()}"}
    lib = build.build_shared_library(src, workdir, entry["target"])
    backend = CLibrary(lib["path"], C_PREFIX)
    times_ns = []
    for i in range(n_decisions):
        one = {"signal": x[i % len(x)][None], "side": side[i % len(x)][None]}
        t0 = time.perf_counter_ns()
        backend.predict(one)
        times_ns.append(time.perf_counter_ns() - t0)
    return {"us": float(np.median(times_ns)) / 1e3, "target": entry["target"], "decisions": n_decisions}


def architecture_cost(
    cfg: TaskConfig, x: np.ndarray, side: np.ndarray, fs_in_hz: float, n_decisions: int = US_DECISIONS, log=print
) -> dict:
    """The device cost of ``cfg``'s architecture, measured on real windows ``x`` (n,
    n_steps, n_channels) and ``side`` (n, n_side), float32, as the model takes them.

    Builds the model untrained, generates its float32 and int8 C as export does, and per
    precision runs :func:`firmware_export.build.cortex_m4_check` (what the validation
    report runs on an exported folder: flash, RAM with stack, instructions per decision
    under QEMU) and times the C backend's library on this CPU. Returns the int8 figures
    the budget holds (``flash_kb``, ``ram_kb``, ``m4_ms``, None where a tool is missing),
    ``us_float32`` / ``us_int8`` and each precision's full record under ``c_<precision>``,
    with ``notes`` naming what could not be measured.
    """
    from firmware_export import build
    from firmware_export.c_model import generate, spec_from_keras, with_preprocessing
    from pipeline.train.model import build_model

    n_steps, n_channels = x.shape[1:]
    model = build_model(cfg.model, n_steps, n_channels, side.shape[1], len(cfg.classes), seed=cfg.seed)
    spec = with_preprocessing(spec_from_keras(model, n_steps, cfg.classes), cfg.preprocess_spec(fs_in_hz).to_dict())
    cost: dict[str, Any] = {"flash_kb": None, "ram_kb": None, "m4_ms": None, "notes": []}
    with tempfile.TemporaryDirectory(prefix="biosig-sweep-cost-") as tmp_name:
        for precision in ("int8", "float32"):
            work = Path(tmp_name) / precision
            src, _ = generate(spec, work, C_PREFIX, precision, source="an untrained model (sweep costing)")
            record: dict[str, Any] = {}
            try:
                r = build.cortex_m4_check(src, x, side, len(cfg.classes))
                r.pop("m4"), r.pop("host")
                record.update(r, ms_at_clock=1000 * r["instructions_mean"] / MCU_CLOCK_HZ)
            except (build.ToolMissing, build.BuildError) as err:
                # No QEMU, or a firmware that does not link (a model too large for the
                # board's 4 MB): the sizes need only the cross compiler and no memory map.
                cost["notes"].append(f"c_{precision} on the M4 not run: {str(err)[:300]}")
                try:
                    record.update(build.m4_sizes(src, work))
                except (build.ToolMissing, build.BuildError) as err2:
                    cost["notes"].append(f"c_{precision} M4 sizes not measured: {str(err2)[:300]}")
            try:
                record["cpu"] = _us_per_decision(src, work, x, side, n_decisions)
            except (build.ToolMissing, build.BuildError) as err:
                record["cpu"] = {"skipped": str(err)[:300]}
                cost["notes"].append(f"c_{precision} on this CPU not timed: {str(err)[:300]}")
            cost[f"c_{precision}"] = record
            cost[f"us_{precision}"] = record["cpu"].get("us")
    q8 = cost["c_int8"]
    if "flash_bytes" in q8:
        cost["flash_kb"] = q8["flash_bytes"] / 1024
        cost["ram_kb"] = q8["ram_with_stack_bytes"] / 1024
    if "ms_at_clock" in q8:
        cost["m4_ms"] = q8["ms_at_clock"]
    cost["within_budget"] = within_budget(cost)
    return cost


#: Costs measured in this process, by :func:`architecture_key`.
_COSTS: dict[str, dict] = {}


# ----------------------------------------------------------------------- trials


def _trial(config: dict, plans: dict, tables: dict):
    """One Ray Tune trial: its planned config, scored by CV, each epoch reported to ASHA."""
    import ray
    from ray import tune

    from pipeline.train.config import config_from_dict
    from pipeline.train.fit import cross_validate, make_deterministic

    plan = plans[config["trial"]]
    table = tables[plan["window_key"]]
    if isinstance(table, ray.ObjectRef):
        table = ray.get(table)
    cfg = config_from_dict(plan["config"])
    make_deterministic(cfg.seed, cfg.train.deterministic)
    plain = f"cv_{cfg.train.monitor}_plain"

    def on_epoch(row: dict) -> None:
        tune.report({"epoch": row["epoch"], "cv_plain": row[plain], "val_kappa": row["val_kappa"]})

    cv = cross_validate(cfg, table, sorted(set(table.group)), log=lambda *_: None, on_epoch=on_epoch)
    # Ray Tune wants the scheduler's metric in every report: the last epoch's again (ASHA
    # has judged that epoch already), with CV's selection score, the trial's score.
    last = cv["history"][-1]
    tune.report(
        {
            "epoch": last["epoch"],
            "cv_plain": last[plain],
            "cv_score": cv["score"],
            "epochs": cv["epochs"],
            "epochs_run": len(cv["history"]),
            "kappa": cv["out_of_fold"]["kappa"],
        }
    )


def asha_scheduler(max_epochs: int):
    """Ray Tune's ASHA over epochs on the per-epoch plain CV score (``cv_plain``)."""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="epoch",
        metric="cv_plain",
        mode="max",
        max_t=max(1, max_epochs),
        grace_period=max(1, min(ASHA_GRACE_EPOCHS, max_epochs)),
        reduction_factor=ASHA_REDUCTION,
        # a trial that reaches its last epoch finishes and reports its CV score
        stop_last_trials=False,
    )


def pareto_front(points: list[tuple[float, float | None, float | None]]) -> list[bool]:
    """Which of ``points`` (CV score: higher is better; M4 ms, flash KB: lower is better;
    None: unmeasured, counted as worst) no other point dominates (as good on all three,
    better on one)."""

    def costs(p):
        return (-p[0], math.inf if p[1] is None else p[1], math.inf if p[2] is None else p[2])

    c = [costs(p) for p in points]
    return [not any(all(b <= a for a, b in zip(ci, cj)) and any(b < a for a, b in zip(ci, cj)) for cj in c) for ci in c]


# ----------------------------------------------------------------------- output


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _param(v) -> str:
    """A sampled value as the table shows it (floats to 4 significant digits; the JSON
    holds them whole)."""
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v)


def _status(r: dict) -> str:
    """A trial's status as the table shows it: why it stopped, or why it never ran."""
    if r["status"] == "stopped early":
        return f"stopped early by ASHA (plain CV {r['last_cv_plain']:.4f} at epoch {r['epochs_run']})"
    if r["status"] in ("failed", "refused"):
        return f"{r['status']}: {r.get('reason', '')[:120]}".replace("|", "/")
    return r["status"]


def pareto_markdown(rows: list[dict], header: list[str]) -> str:
    """The trials as a Markdown table (``rows`` as :func:`sweep` records them)."""
    yes_no = {True: "yes", False: "**no**", None: "unknown"}
    lines = [
        *header,
        "",
        "| trial | params | status | CV score | epochs run | int8 flash KB | RAM KB | M4 ms @ 64 MHz "
        "| c_float32 us | c_int8 us | within budget | Pareto front |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        cost = r.get("cost") or {}
        params = ", ".join(f"{k}={_param(v)}" for k, v in r["params"].items())
        lines.append(
            f"| {r['trial']} | {params} | {_status(r)} | {_fmt(r.get('cv_score'), '.4f')} "
            f"| {r.get('epochs_run', 0)} | {_fmt(cost.get('flash_kb'))} | {_fmt(cost.get('ram_kb'))} "
            f"| {_fmt(cost.get('m4_ms'))} | {_fmt(cost.get('us_float32'))} | {_fmt(cost.get('us_int8'))} "
            f"| {yes_no[r.get('within_budget')] if cost else '-'} | {'yes' if r.get('pareto') else ''} |"
        )
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict], path: Path, title: str) -> bool:
    """CV score against M4 ms per decision, marker area by int8 flash; over-budget trials
    (never trained, so without a score) in grey on a strip below; the front joined.
    False (nothing written) when no trial has an M4 time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if (r.get("cost") or {}).get("m4_ms") is not None]
    if not timed:
        return False
    scored = [r for r in timed if r.get("cv_score") is not None or r.get("last_cv_plain") is not None]
    scores = [r["cv_score"] if r.get("cv_score") is not None else r["last_cv_plain"] for r in scored]
    low = min(scores, default=0.0)
    high = max(scores, default=1.0)
    strip = low - 0.15 * max(high - low, 0.05)

    def size(r):
        return 20 + 6 * (r["cost"].get("flash_kb") or 0)

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in timed:
        ms = r["cost"]["m4_ms"]
        if r["status"] == "over budget":
            ax.scatter(ms, strip, s=size(r), c="0.65", marker="X", edgecolors="none")
        elif r.get("cv_score") is not None:
            ax.scatter(ms, r["cv_score"], s=size(r), c="tab:blue", alpha=0.75, edgecolors="k", linewidths=0.5)
        elif r.get("last_cv_plain") is not None:  # stopped by ASHA: its last epoch's plain score
            ax.scatter(ms, r["last_cv_plain"], s=size(r), facecolors="none", edgecolors="tab:blue")
        if r["status"] == "over budget" or (r.get("cv_score") is None and r.get("last_cv_plain") is None):
            y = strip
        else:
            y = r["cv_score"] if r.get("cv_score") is not None else r["last_cv_plain"]
        ax.annotate(str(r["trial"]), (ms, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = sorted((r for r in timed if r.get("pareto")), key=lambda r: r["cost"]["m4_ms"])
    if front:
        ax.plot(
            [r["cost"]["m4_ms"] for r in front],
            [r["cv_score"] for r in front],
            "-",
            c="tab:red",
            lw=1.2,
            label="Pareto front (score, M4 ms, flash)",
        )
    ax.axvline(BUDGET["m4_ms"], c="0.4", ls="--", lw=1, label=f"budget {BUDGET['m4_ms']:g} ms at 64 MHz")
    ax.axhline(strip, c="0.85", lw=6, zorder=0)
    ax.text(ax.get_xlim()[0], strip, " over budget: never trained", va="center", fontsize=7, color="0.4")
    ax.scatter([], [], c="tab:blue", label="trained (CV score)")
    ax.scatter([], [], facecolors="none", edgecolors="tab:blue", label="stopped by ASHA (last epoch's score)")
    ax.scatter([], [], c="0.65", marker="X", label="over budget")
    ax.set_xlabel("int8 C on a Cortex-M4: ms per decision at 64 MHz (QEMU instruction count)")
    ax.set_ylabel("record-level CV score")
    ax.set_title(title + "\nmarker area: int8 flash", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------- the sweep


def _describe(arch: dict) -> str:
    return (
        f"LSTM {arch['lstm_units']}, dense {arch['dense_units']}, window {arch['n_steps']} x {arch['n_channels']} "
        f"at {arch['preprocess']['fs_out_hz']:g} Hz, {arch['n_side']} side features"
    )


def _cost_line(cost: dict) -> str:
    verdict = {True: "within budget", False: "OVER BUDGET", None: "budget not fully checked"}[cost["within_budget"]]
    return (
        f"int8 {_fmt(cost['flash_kb'])} KB flash, {_fmt(cost['ram_kb'])} KB RAM, {_fmt(cost['m4_ms'])} ms at 64 MHz; "
        f"c_float32 {_fmt(cost.get('us_float32'))} us, c_int8 {_fmt(cost.get('us_int8'))} us on this CPU: {verdict}"
    )


def _plan(task, base: TaskConfig, space: dict, trials: int, train_groups: list[str], data_dir, log) -> list[dict]:
    """The sampled trials, each with its config, window setting and device cost; those
    over budget (or refused by the config's own checks) marked, never to be trained."""
    from pipeline.train import data
    from pipeline.train.config import config_from_dict
    from pipeline.window.side import Standardiser

    base_dict = base.to_dict()
    rows: list[dict] = []
    for i, params in enumerate(sample_trials(space, trials, base.seed)):
        row: dict[str, Any] = {"trial": i, "params": params, "status": "to train", "epochs_run": 0}
        try:
            row["cfg"] = config_from_dict(merged_config(base_dict, params))
        except ConfigError as err:
            row.update(status="refused", reason=str(err))
            log(f"  trial {i}: refused: {err}")
        else:
            row["window_key"] = window_key(row["cfg"])
        rows.append(row)
    probes: dict[str, tuple] = {}
    for row in rows:
        if row["status"] == "refused":
            continue
        cfg, key = row["cfg"], row["window_key"]
        if key not in probes:
            # The first training record's windows: the window shape, and real windows to cost on.
            probe = data.load_windows(cfg, train_groups[:1], data_dir)
            if not len(probe.label):
                raise SweepError(f"sweep {task}: record {train_groups[0]} gives no windows with {key}")
            pick = np.unique(np.linspace(0, len(probe.label) - 1, min(COST_WINDOWS, len(probe.label))).round())
            pick = pick.astype(int)
            side = Standardiser.fit(probe.side)(probe.side[pick])
            probes[key] = (np.ascontiguousarray(probe.x[pick], np.float32), side, probe.fs_in_hz)
        x, side, fs_in_hz = probes[key]
        arch = architecture(cfg, x.shape[1], x.shape[2], side.shape[1], fs_in_hz)
        akey = architecture_key(arch)
        if akey not in _COSTS:
            t0 = time.perf_counter()
            _COSTS[akey] = architecture_cost(cfg, x, side, fs_in_hz, log=log)
            log(f"  cost of {_describe(arch)}: {_cost_line(_COSTS[akey])} ({time.perf_counter() - t0:.0f} s)")
        cost = _COSTS[akey]
        row["architecture"] = {k: v for k, v in arch.items() if k != "preprocess"} | {
            "fs_model_hz": arch["preprocess"]["fs_out_hz"]
        }
        row["cost"] = cost
        row["within_budget"] = cost["within_budget"]
        if cost["within_budget"] is False:
            row["status"] = "over budget"
    return rows


def _read_tables(rows: list[dict], train_groups: list[str], data_dir, log) -> dict:
    """The training windows once per window setting of the rows still ``to train``
    ({window key: WindowTable}); a setting whose CV folds would lack a class CV needs is
    refused here, before any trial starts."""
    from collections import Counter

    from pipeline.read.splits import record_folds
    from pipeline.train import data

    tables: dict[str, Any] = {}
    for row in rows:
        if row["status"] != "to train" or row["window_key"] in tables:
            continue
        key, cfg = row["window_key"], row["cfg"]
        log(f"  reading the windows of {len(train_groups)} records for window setting {len(tables) + 1}: {key}")
        table = data.load_windows(cfg, train_groups, data_dir)
        counts: dict[str, Counter] = {str(g): Counter() for g in train_groups}
        for g, lab in zip(table.group, table.label):
            counts[str(g)][str(lab)] += 1
        record_folds(counts, cfg.data.cv_folds, cfg.data.cv_fold_classes, cfg.data.cv_seed)
        tables[key] = table
    return tables


def record_result(row: dict, error, metrics: dict) -> None:
    """Put a Ray trial's outcome into its ``row``: trained (its final report holds CV's
    score), stopped early (ASHA ended it after an epoch's report: no CV score), or failed."""
    if error is not None:
        row.update(status="failed", reason=str(error).strip().splitlines()[-1][:300])
    elif "cv_score" in metrics:
        if not math.isfinite(metrics["cv_score"]):
            row.update(status="failed", reason=f"CV score {metrics['cv_score']}")
        else:
            row.update(
                status="trained",
                cv_score=float(metrics["cv_score"]),
                epochs=int(metrics["epochs"]),
                epochs_run=int(metrics["epochs_run"]),
                kappa=float(metrics["kappa"]),
            )
    elif "epoch" in metrics:
        row.update(status="stopped early", epochs_run=int(metrics["epoch"]), last_cv_plain=float(metrics["cv_plain"]))
    else:
        row.update(status="failed", reason="no score reported")


def _train(rows: list[dict], train_groups: list[str], data_dir, address, out: Path, verbose: int, log) -> None:
    """Train the rows still ``to train`` on Ray Tune with ASHA; fill in their results."""
    todo = [r for r in rows if r["status"] == "to train"]
    tables = _read_tables(rows, train_groups, data_dir, log)

    import os

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray import tune

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # Each window table once in the object store; a trial fetches only its own.
        refs = {key: ray.put(table) for key, table in tables.items()}
        plans = {r["trial"]: {"config": r["cfg"].to_dict(), "window_key": r["window_key"]} for r in todo}
        storage = (out.parent / f"{out.stem}-ray").resolve()
        reporter = tune.CLIReporter(
            metric_columns=["epoch", "cv_plain", "cv_score"], parameter_columns=["trial"], max_report_frequency=10
        )
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, plans=plans, tables=refs), {"cpu": 1}),
            param_space={"trial": tune.grid_search([r["trial"] for r in todo])},
            tune_config=tune.TuneConfig(
                scheduler=asha_scheduler(max(r["cfg"].train.epochs for r in todo)), num_samples=1
            ),
            run_config=tune.RunConfig(
                name=out.stem, storage_path=str(storage), progress_reporter=reporter, verbose=verbose
            ),
        )
        # Ray's ResultGrid iterates by index (no __iter__ for a checker); its results are read as documented.
        results: Any = tuner.fit()
        for result in results:
            record_result(rows[result.config["trial"]], result.error, result.metrics or {})
    finally:
        ray.shutdown()


def sweep(
    task: str,
    trials: int,
    address: str | None = None,
    profile: str = "full",
    space: dict | None = None,
    out: str | Path | None = None,
    data_dir=None,
    groups: list[str] | None = None,
    overrides: dict | None = None,
    log=print,
    verbose: int = 1,
) -> dict:
    """Sample ``trials`` trials, cost each architecture on the device, train those within
    budget on Ray Tune (ASHA), write the best config as TOML to ``out`` and the Pareto
    table, plot and trials JSON beside it; return a summary.

    ``groups`` limits the training records (tests); ``overrides`` apply to the task's
    config before the search space (tests shorten training with it).
    """
    space = DEFAULT_SPACE if space is None else space
    check_space(space)
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, not {trials}")
    base = load_config(task, profile, overrides)
    if not base.data.cv_folds:
        raise ConfigError(f"{task} [{profile}]: a sweep scores trials by CV; set data.cv_folds")
    if address:
        check_address(address)
    from pipeline.train.data import task_split

    split = task_split(base, data_dir=data_dir)
    train_groups = sorted(groups or split.train)
    leaked = set(train_groups) & set(split.test)
    if leaked:
        raise ConfigError(f"sweep records {sorted(leaked)} are in the held-out split")
    t0 = time.perf_counter()
    out = Path(out or f"runs/sweep-{task}-{time.strftime('%Y%m%d-%H%M%S')}.toml")
    log(
        f"sweep {task} [{profile}]: {trials} trials, CV {base.data.cv_folds}-fold on {len(train_groups)} "
        f"training records; each architecture costed on the device first (budget: int8 C flash <= "
        f"{BUDGET['flash_kb']:g} KB, RAM <= {BUDGET['ram_kb']:g} KB, <= {BUDGET['m4_ms']:g} ms per decision at "
        f"{MCU_CLOCK_HZ / 1e6:g} MHz)"
    )
    rows = _plan(task, base, space, trials, train_groups, data_dir, log)
    notes = sorted({note for r in rows for note in (r.get("cost") or {}).get("notes", [])})
    for note in notes:
        log(f"  !! {note}")
    over = sum(r["status"] == "over budget" for r in rows)
    if over:
        log(f"  {over} of {trials} trials over the device budget: reported, never trained")
    if any(r["status"] == "to train" for r in rows):
        _train(rows, train_groups, data_dir, address, out, verbose, log)
    wall_s = time.perf_counter() - t0

    candidates = [r for r in rows if r["status"] == "trained" and r["within_budget"] is not False]
    front = pareto_front([(r["cv_score"], r["cost"]["m4_ms"], r["cost"]["flash_kb"]) for r in candidates])
    for r, on in zip(candidates, front):
        r["pareto"] = on
    count = {s: sum(r["status"] == s for r in rows) for s in ("trained", "stopped early", "over budget", "failed")}
    count["refused"] = sum(r["status"] == "refused" for r in rows)
    ran = count["trained"] + count["stopped early"] + count["failed"]
    best = max(candidates, key=lambda r: r["cv_score"], default=None)
    monitor = base.train.monitor
    summary = (
        f"sweep {task} [{profile}]: {trials} trials: {ran} ran ({count['stopped early']} stopped early by ASHA, "
        f"{count['failed']} failed), {count['over budget']} over the device budget (never trained)"
        + (f", {count['refused']} refused by the config's checks" if count["refused"] else "")
        + f"; wall time {wall_s / 60:.1f} min"
    )
    if best is not None:
        summary += f"; best CV {monitor} {best['cv_score']:.4f} (trial {best['trial']})"

    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out.with_name(f"{out.stem}-pareto.md"),
        "plot": out.with_name(f"{out.stem}-pareto.png"),
        "json": out.with_name(f"{out.stem}-trials.json"),
    }
    header = [
        f"# Sweep of {task} [{profile}]: CV score against the device's cost",
        "",
        summary + ".",
        "",
        f"Scored by {base.data.cv_folds}-fold record-level CV {monitor} on {len(train_groups)} training records "
        "(the held-out split never read); ASHA on each epoch's plain CV score (first rung "
        f"{ASHA_GRACE_EPOCHS} epochs, x{ASHA_REDUCTION}). Device cost per architecture, before training, of "
        "the untrained model's generated C: int8 flash and RAM with stack on a Cortex-M4 (arm-none-eabi-gcc), "
        f"ms per decision = QEMU instructions / {MCU_CLOCK_HZ / 1e6:g} MHz; us per decision: the C backend's "
        f"library on this CPU, median of {US_DECISIONS} (reported, not a budget). Budget: flash <= "
        f"{BUDGET['flash_kb']:g} KB, RAM <= {BUDGET['ram_kb']:g} KB, <= {BUDGET['m4_ms']:g} ms. Pareto front: "
        "trained within budget, not beaten on CV score, M4 ms and flash at once.",
        *([""] + [f"- not measured: {note}" for note in notes] if notes else []),
    ]
    paths["table"].write_text(pareto_markdown(rows, header))
    plotted = pareto_plot(rows, paths["plot"], f"{task} [{profile}]: {trials} trials")
    if not plotted:
        log("  no trial has an M4 time (QEMU missing?): no plot written")
    public = [{k: v for k, v in r.items() if k != "cfg"} for r in rows]
    paths["json"].write_text(
        json.dumps(
            {
                "task": task,
                "profile": profile,
                "monitor": monitor,
                "budget": BUDGET,
                "clock_hz": MCU_CLOCK_HZ,
                "asha": {"time_attr": "epoch", "grace_epochs": ASHA_GRACE_EPOCHS, "reduction": ASHA_REDUCTION},
                "training_records": train_groups,
                "wall_s": wall_s,
                "counts": count,
                "not_measured": notes,
                "best_trial": None if best is None else best["trial"],
                "trials": public,
            },
            indent=1,
        )
    )
    if best is None:
        log(summary)
        why = "; ".join(sorted({r.get("reason", r["status"]) for r in rows if r["status"] != "over budget"}))
        raise SweepError(
            f"sweep {task}: no trial finished within the device budget "
            f"({count['over budget']} over budget{'; ' + why if why else ''}); table in {paths['table']}"
        )
    params = best["params"]
    comment = (
        f"Best of {count['trained']} trained Ray Tune trials of {task} [{profile}] by {base.data.cv_folds}-fold "
        f"record-level CV {monitor} {best['cv_score']:.4f} ({len(train_groups)} training records; the held-out "
        f"split never read), within the device budget: {_cost_line(best['cost'])}.\n"
        f"Changed: {json.dumps(params)}\n"
        f"Pareto table: {paths['table'].name}\n"
        f"Train it: biosig-edge train {task} --config {out}"
    )
    out.write_text(config_toml(best["cfg"], comment))
    log(summary)
    log(f"  best config {out} ({params}); table {paths['table']}, plot {paths['plot']}, trials {paths['json']}")
    scores = sorted((r["cv_score"] for r in rows if r["status"] == "trained"), reverse=True)
    return {
        "best_score": best["cv_score"],
        "scores": scores,
        "params": params,
        "config": str(out),
        "trials": trials,
        "ran": ran,
        "stopped_early": count["stopped early"],
        "over_budget": count["over budget"],
        "failed": count["failed"],
        "refused": count["refused"],
        "wall_s": wall_s,
        "summary": summary,
        **{k: str(v) for k, v in paths.items() if k != "plot" or plotted},
    }
