"""Task configuration: a TOML file per task, with ``quick`` and ``full`` profiles.

The TOML holds sections matching the dataclasses below; ``[profiles.<name>]`` holds the
same sections again with only the keys that profile changes. Unknown keys and wrong types
are refused with the key named (``train.epoch: unknown key``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.preprocess import PreprocessSpec

CONFIG_DIR = Path(__file__).parent / "configs"


#: The ``[preprocess]`` table: every field of PreprocessSpec except the recording's rate,
#: which comes from the data. Derived, so that the two can never drift apart.
_spec_hints = typing.get_type_hints(PreprocessSpec)
PreprocessConfig = dataclasses.make_dataclass(
    "PreprocessConfig",
    [
        (f.name, _spec_hints[f.name], field(default=f.default))
        for f in dataclasses.fields(PreprocessSpec)
        if f.name != "fs_in_hz"
    ],
    frozen=True,
)
PreprocessConfig.__module__ = __name__
if typing.TYPE_CHECKING:
    # Built at run time, so the checker sees a value, not a class: its fields are Any to it.
    PreprocessConfigType = typing.Any
else:
    PreprocessConfigType = PreprocessConfig


@dataclass(frozen=True)
class WindowConfig:
    #: ECG beats: extent around the R peak; EEG: window_s and hop_s.
    before_s: float = 0.25
    after_s: float = 0.45
    rr_features: list[str] = field(default_factory=list)
    window_s: float = 2.0
    hop_s: float = 1.0
    #: ECG beats: "none" (mV as filtered), "zscore" (each window and channel) or
    #: "template" (beat and its difference from the patient's running average beat).
    normalise: str = "none"

    def __post_init__(self):
        # A beat window must hold the R peak and at least one sample around it (before_s
        # 0 is the peak itself); an EEG window and its hop must be positive (hop 0 never
        # advances).
        if self.before_s < 0:
            raise ConfigError(f"window.before_s: 0 or more seconds, not {self.before_s}")
        if self.after_s <= 0:
            raise ConfigError(f"window.after_s: more than 0 seconds, not {self.after_s}")
        for key in ("window_s", "hop_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"window.{key}: more than 0 seconds, not {getattr(self, key)}")


@dataclass(frozen=True)
class DataConfig:
    #: Use only the first n records/segments/subjects of each side (0: all). For tests.
    limit_train: int = 0
    limit_val: int = 0
    limit_test: int = 0
    #: MIT-BIH: validation records drawn from DS1 (when ``cv_folds`` is 0).
    val_records: int = 5
    #: EEGMAT: k-fold by subject for the subject-independent estimate (0: single split).
    subject_folds: int = 0
    #: Record-level k-fold cross-validation inside the training split (0: one validation
    #: split instead). The epoch count and the decision offsets are chosen on the pooled
    #: out-of-fold predictions; the final model is trained on every training record.
    cv_folds: int = 0
    #: Classes every CV fold must hold (a fold without them cannot score them: refused).
    cv_fold_classes: list[str] = field(default_factory=list)
    #: Seed of the fold assignment (fixed, so that seeds vary only the training).
    cv_seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    lstm_units: list[int] = field(default_factory=lambda: [32])
    dense_units: int = 32
    dropout: float = 0.2
    #: Dropout on the LSTM's inputs during training (a no-op in exported graphs).
    lstm_input_dropout: float = 0.0

    def __post_init__(self):
        # Refused at load, not after training: the generated C stacks at most
        # MAX_LSTM_LAYERS LSTMs (export would refuse the trained model), a layer needs a
        # unit, and Keras takes any dropout rate in [0, 1) (1 drops everything).
        from firmware_export.c_model import MAX_LSTM_LAYERS

        if not 1 <= len(self.lstm_units) <= MAX_LSTM_LAYERS:
            raise ConfigError(
                f"model.lstm_units: 1 to {MAX_LSTM_LAYERS} LSTM layers (the generated C's limit), "
                f"not {len(self.lstm_units)}"
            )
        if any(u < 1 for u in self.lstm_units):
            raise ConfigError(f"model.lstm_units: every layer needs at least 1 unit, not {self.lstm_units}")
        if self.dense_units < 1:
            raise ConfigError(f"model.dense_units: at least 1, not {self.dense_units}")
        for key in ("dropout", "lstm_input_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"model.{key}: a rate in [0, 1), not {getattr(self, key)}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.002
    patience: int = 6
    #: "none", "balanced" (inverse frequency) or "sqrt" (square root of it: softer).
    class_weight: str = "sqrt"
    #: Extra factor per class (in the order of ``classes``) on top of ``class_weight``:
    #: below 1 for a class too rare to trust (MIT-BIH F: 392 training beats, most from one
    #: patient) so that it does not soak up the majority class. Empty: all 1.
    class_weight_scale: list[float] = field(default_factory=list)
    #: Per epoch, keep at most this many windows of the majority class (0: all).
    max_majority_per_epoch: int = 0
    augment: bool = True
    #: Model selection on the validation split (or the CV folds): "loss", "macro_f1",
    #: "kappa" or "jk_index" (ECG: kappa / 2 + (Se + +P of S and V) / 8).
    monitor: str = "macro_f1"
    #: With CV: choose per-class logit offsets on the pooled out-of-fold predictions
    #: (folded into the output layer's bias, so every exported format carries them), kept
    #: only if offsets chosen on the other folds raise the score on each fold's records.
    tune_offsets: bool = False
    #: Largest offset magnitude searched (natural log; at most 2, the grid's edge).
    max_offset: float = 2.0
    #: Deterministic TensorFlow ops (``tf.config.experimental.enable_op_determinism``):
    #: the same command gives the same weights.
    deterministic: bool = True
    #: Polyak averaging: the model evaluated, selected and exported is the exponential
    #: moving average of the weights over training steps with this momentum (0.99: about
    #: the last 100 steps, 1.5 epochs of MIT-BIH DS1), not the last step's weights. 0: off.
    #: Why: one step's weights land anywhere in the noise of the last updates, so the CV
    #: score jumped by 0.05 from epoch to epoch and the offsets chosen on it with it.
    weight_average: float = 0.0

    def __post_init__(self):
        if not 0 <= self.weight_average < 1:
            raise ConfigError(f"train.weight_average: a momentum in [0, 1), not {self.weight_average}")
        # patience counts epochs without improvement: 0 would stop after the first epoch.
        for key in ("epochs", "batch_size", "learning_rate", "patience"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"train.{key}: must be above 0, not {getattr(self, key)}")
        for key in ("max_majority_per_epoch", "max_offset"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"train.{key}: 0 or more, not {getattr(self, key)}")
        choices = {"class_weight": ("none", "balanced", "sqrt"), "monitor": ("loss", "macro_f1", "kappa", "jk_index")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"train.{key}: must be one of {allowed}, not {getattr(self, key)!r}")


#: What a task's windows are: beats of an annotated ECG, or fixed EEG windows.
KINDS = ("ecg-beats", "eeg-windows")


@dataclass(frozen=True)
class TaskConfig:
    task: str
    dataset: str
    kind: str  # "ecg-beats" or "eeg-windows"
    classes: list[str]
    channels: list[str]
    seed: int
    preprocess: PreprocessConfigType
    window: WindowConfig
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    profile: str = "full"
    #: Binary view reported beside the multi-class metrics (Bonn: seizure vs the rest).
    positive_class: str = ""

    def __post_init__(self):
        """Check values and cross-field rules at load, naming the key (``ConfigError``,
        exit 2), so that nothing fails after the data has been read."""
        from pipeline.read.cards import load_card
        from pipeline.window.ecg import NORMALISATIONS
        from pipeline.window.rr import RR_FEATURE_NAMES

        if self.kind not in KINDS:
            raise ConfigError(f"kind: must be one of {KINDS}, not {self.kind!r}")
        if not self.classes:
            raise ConfigError("classes: must name at least one class")
        dup = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if dup:
            raise ConfigError(f"classes: {dup} named more than once")
        if not self.channels:
            raise ConfigError("channels: must name at least one channel")
        if self.window.normalise not in NORMALISATIONS:
            raise ConfigError(f"window.normalise: must be one of {NORMALISATIONS}, not {self.window.normalise!r}")
        unknown = [f for f in self.window.rr_features if f not in RR_FEATURE_NAMES]
        if unknown:
            raise ConfigError(f"window.rr_features: unknown {unknown} (known: {list(RR_FEATURE_NAMES)})")
        if self.kind == "eeg-windows" and (self.window.rr_features or self.window.normalise != "none"):
            raise ConfigError("window.rr_features / window.normalise: ECG beat settings on an EEG task")
        scale = self.train.class_weight_scale
        if scale and len(scale) != len(self.classes):
            raise ConfigError(
                f"train.class_weight_scale: {len(scale)} values for {len(self.classes)} classes {self.classes}"
            )
        if any(v < 0 for v in scale):
            raise ConfigError(f"train.class_weight_scale: negative weight in {scale}")
        if self.positive_class and self.positive_class not in self.classes:
            raise ConfigError(f"positive_class: {self.positive_class!r} is not one of classes {self.classes}")
        missing = [c for c in self.data.cv_fold_classes if c not in self.classes]
        if missing:
            raise ConfigError(f"data.cv_fold_classes: {missing} not in classes {self.classes}")
        if self.data.cv_folds == 1 or self.data.cv_folds < 0:
            raise ConfigError(f"data.cv_folds: 0 (no CV) or at least 2, not {self.data.cv_folds}")
        if self.data.cv_folds and self.kind != "ecg-beats":
            raise ConfigError("data.cv_folds: record-level CV is made for ECG beat tasks")
        if self.train.monitor == "jk_index" and not {"S", "V"} <= set(self.classes):
            raise ConfigError("train.monitor: jk_index scores the S and V classes, which this task lacks")
        if self.train.tune_offsets and not self.data.cv_folds:
            raise ConfigError("train.tune_offsets: needs data.cv_folds (offsets are chosen on CV folds)")
        # The preprocessing chain at the dataset's rate, built now: a decimation that
        # would alias is refused here, before any recording is read.
        self.preprocess_spec(load_card(self.dataset).fs_hz)

    def preprocess_spec(self, fs_in_hz: float) -> PreprocessSpec:
        try:
            return PreprocessSpec(fs_in_hz=fs_in_hz, **dataclasses.asdict(self.preprocess))
        except ValueError as err:
            raise ConfigError(f"preprocess: {err}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {
    "preprocess": PreprocessConfig,
    "window": WindowConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}


def _check_type(path: str, value, hint) -> object:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        for arg in args:
            if arg is type(None) and value is None:
                return None
            try:
                return _check_type(path, value, arg)
            except ConfigError:
                pass
        raise ConfigError(f"{path}: expected {hint}, got {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_type(f"{path}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (
        hint is bool
        and not isinstance(value, bool)
        or not isinstance(value, hint)
        or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls, data: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {sorted(names)})")
    kwargs = {}
    for key, value in data.items():
        if key in _SECTIONS and cls is TaskConfig:
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key}: expected a table")
            kwargs[key] = _build(_SECTIONS[key], value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(prefix + key, value, hints[key])
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from None


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(task_or_path: str | Path, profile: str = "full", overrides: dict | None = None) -> TaskConfig:
    """Load a task's config (``ecg-mitdb``) or a TOML file, with a profile applied."""
    path = Path(task_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{task_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
            raise ConfigError(f"no task '{task_or_path}' (tasks: {', '.join(known)})")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    profiles = raw.pop("profiles", {})
    if profile not in profiles and profile != "full":
        raise ConfigError(f"{path}: no profile '{profile}' (profiles: full, {', '.join(profiles)})")
    merged = _merge(raw, profiles.get(profile, {}))
    merged = _merge(merged, overrides or {})
    merged["profile"] = profile
    for key in ("preprocess", "window", "data", "model", "train"):
        merged.setdefault(key, {})
    try:
        return _build(TaskConfig, merged, "")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_from_dict(data: dict) -> TaskConfig:
    """Rebuild a TaskConfig from ``TaskConfig.to_dict()`` (as stored in run.json)."""
    return _build(TaskConfig, dict(data), "run.json config: ")
