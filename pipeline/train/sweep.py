"""Hyper-parameter sweeps on Ray Tune, each trial scored by record-level CV.

    biosig-edge sweep ecg-mitdb --trials 20 [--address HOST:PORT] [--space FILE] [--out FILE]

Local Ray on this machine by default (``ray.init(num_cpus=2)``), a running Ray cluster
when given its address. Each trial trains the task's CV folds inside the training split
(:func:`pipeline.train.fit.cross_validate`): its score is the pooled out-of-fold monitor,
so no trial ever sees the held-out split (DS2 is not even read). The windows are read
once by the driver and shared with the trials through Ray's object store, which is why a
search space may only hold keys that do not change the windows (``train.*``,
``model.*``). The best trial's config is written as a TOML that
``biosig-edge train TASK --config FILE`` takes.

A search space file (TOML) maps ``section.key`` to one distribution::

    ["train.learning_rate"]
    loguniform = [0.0005, 0.005]
    ["model.lstm_units"]
    choice = [[8], [16], [24]]
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import tomllib
from pathlib import Path
from typing import Any

from pipeline.errors import BiosigError, ConfigError
from pipeline.train.config import TaskConfig, load_config


class SweepError(BiosigError):
    """A sweep cannot start or finish (no Ray cluster at the address, every trial failed)."""


#: Sections a trial may change: anything else changes the windows the driver read once.
SWEEPABLE = ("train", "model")

#: Distributions a space file may name, with Ray Tune's sampler for each.
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


def load_space(path: str | Path | None) -> dict:
    """A search space ({"section.key": {distribution: args}}), from a TOML file or the default."""
    if path is None:
        return dict(DEFAULT_SPACE)
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None


def check_space(space: dict, source: str = "search space") -> None:
    """Refuse a key that is not a field of a sweepable section, or an unknown
    distribution, naming it (before Ray starts)."""
    from pipeline.train.config import ModelConfig, TrainConfig

    fields = {
        "train": {f.name for f in dataclasses.fields(TrainConfig)},
        "model": {f.name for f in dataclasses.fields(ModelConfig)},
    }
    if not space:
        raise ConfigError(f"{source}: empty")
    for key, dist in space.items():
        section, _, name = key.partition(".")
        if section not in SWEEPABLE or name not in fields[section]:
            known = sorted(f"{s}.{n}" for s in SWEEPABLE for n in fields[s])
            raise ConfigError(f"{source}: unknown key '{key}' (a trial may change: {', '.join(known)})")
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise ConfigError(f"{source}: '{key}' must be one table entry, one of {DISTRIBUTIONS}, got {dist!r}")


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def _tune_space(space: dict) -> dict:
    from ray import tune

    samplers = {
        "choice": lambda a: tune.choice(a),
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
    }
    return {key: samplers[next(iter(d))](next(iter(d.values()))) for key, d in space.items()}


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


def _trial(params: dict, base: dict, table=None):
    """One Ray Tune trial: the task's config with ``params``, scored by CV."""
    from ray import tune

    from pipeline.train.config import config_from_dict
    from pipeline.train.fit import cross_validate, make_deterministic

    merged = json.loads(json.dumps(base))
    for section, values in _nested(params).items():
        merged[section].update(values)
    cfg = config_from_dict(merged)
    make_deterministic(cfg.seed, cfg.train.deterministic)
    cv = cross_validate(cfg, table, sorted(set(table.group)), log=lambda *_: None)
    tune.report({"cv_score": cv["score"], "epochs": cv["epochs"], "kappa": cv["out_of_fold"]["kappa"]})


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
    """Run ``trials`` trials; write the best config as TOML to ``out``; return a summary.

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
    from pipeline.train.data import load_windows, task_split

    split = task_split(base, data_dir=data_dir)
    train_groups = sorted(groups or split.train)
    leaked = set(train_groups) & set(split.test)
    if leaked:
        raise ConfigError(f"sweep records {sorted(leaked)} are in the held-out split")
    t0 = time.perf_counter()
    log(
        f"sweep {task} [{profile}]: {trials} trials, CV {base.data.cv_folds}-fold on {len(train_groups)} "
        f"training records; reading them once"
    )
    table = load_windows(base, train_groups, data_dir)
    # A fold without S or V beats is refused here, before any trial starts.
    from collections import Counter

    from pipeline.read.splits import record_folds

    counts: dict[str, Counter] = {str(g): Counter() for g in train_groups}
    for g, lab in zip(table.group, table.label):
        counts[str(g)][str(lab)] += 1
    record_folds(counts, base.data.cv_folds, base.data.cv_fold_classes, base.data.cv_seed)

    import os

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = Path(out or f"runs/sweep-{task}-{time.strftime('%Y%m%d-%H%M%S')}.toml")
        storage = (out.parent / f"{out.stem}-ray").resolve()
        reporter = tune.CLIReporter(
            metric_columns=["cv_score", "kappa", "epochs"], parameter_columns=list(space), max_report_frequency=10
        )
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, base=base.to_dict(), table=table), {"cpu": 1}),
            param_space=_tune_space(space),
            tune_config=tune.TuneConfig(
                metric="cv_score",
                mode="max",
                num_samples=trials,
                search_alg=BasicVariantGenerator(random_state=base.seed),
            ),
            run_config=tune.RunConfig(
                name=out.stem, storage_path=str(storage), progress_reporter=reporter, verbose=verbose
            ),
        )
        # Ray's ResultGrid iterates by index (no __iter__ for a checker); its results are read as documented.
        results: Any = tuner.fit()
        ok = [
            r for r in results if r.error is None and r.metrics and math.isfinite(r.metrics.get("cv_score", math.nan))
        ]
        if not ok:
            errors = "; ".join(str(r.error).splitlines()[-1] for r in results if r.error is not None)
            raise SweepError(f"sweep {task}: every trial failed ({errors or 'no score reported'})")
        best = max(ok, key=lambda r: r.metrics["cv_score"])
        params = {k: best.config[k] for k in space}
        merged = json.loads(json.dumps(base.to_dict()))
        for section, values in _nested(params).items():
            merged[section].update(values)
        from pipeline.train.config import config_from_dict

        best_cfg = config_from_dict(merged)
        comment = (
            f"Best of {len(ok)} Ray Tune trials of {task} [{profile}] by {base.data.cv_folds}-fold "
            f"record-level CV {base.train.monitor} {best.metrics['cv_score']:.4f} "
            f"({len(train_groups)} training records; the held-out split never read).\n"
            f"Changed: {json.dumps(params)}\n"
            f"Train it: biosig-edge train {task} --config {out}"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(config_toml(best_cfg, comment))
        scores = sorted((r.metrics["cv_score"] for r in ok), reverse=True)
        log(
            f"best CV {base.train.monitor} {scores[0]:.4f} of {len(ok)} trials ({params}); "
            f"config written to {out} ({(time.perf_counter() - t0) / 60:.1f} min)"
        )
        return {
            "best_score": scores[0],
            "scores": scores,
            "params": params,
            "config": str(out),
            "trials": len(results),
            "failed": len(results) - len(ok),
        }
    finally:
        ray.shutdown()
