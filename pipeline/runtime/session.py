"""Streaming sessions: ``push(samples) -> events`` on a device.

A session takes samples as its input declares them (:class:`~pipeline.read.record.SignalSpec`:
rate, channel labels, units) and turns them into what its model was trained on, or
refuses: channels picked by name (aliases and ``channel_map``), units converted, the rate
converted by a streaming resampler (:mod:`pipeline.preprocess.resample`) when it differs
from the model's. Then, at the model's rate, the causal preprocessing filter and, for ECG,
the QRS detector, the RR-interval tracker, the patient's running beat template and a ring
buffer of preprocessed samples; each detected beat is classified as soon as its window has
closed and the next beat (its post-RR) is known. EEG windows are carried chunk by chunk.

Input the model must not see is never passed on silently:

- NaN/inf, a flat line (lead-off) lasting ``flat_s``, or samples outside the manifest's
  plausible range for longer than ``spike_s``: a ``signal_quality`` event, and every state
  restarts when good samples return;
- a spike (out of range for at most ``spike_s``): the last good value is held instead, and
  decisions whose window holds it are flagged;
- samples at the converter's full scale (clipping, where the input declares its range):
  decisions whose window holds them are flagged.

Events are dicts, JSON-ready. Sample indices are at the *input's* own rate:

``{"type": "beat", "sample", "time_s", "class", "probs", "inputs_ready_at_sample",
  "quality", "quality_flags"}``;
``{"type": "window", "start_sample", "end_sample", "time_s", "class", "probs", "quality",
  "quality_flags"}`` (EEG);
``{"type": "signal_quality", "kind": "nonfinite" | "flat" | "out_of_range", "sample",
  "time_s", "channels", "action": "state reset"}`` where a bad stretch begins and
``{"type": "signal_quality", "kind": "recovered", "sample", "time_s", "gap_samples"}``
where good samples return; ``{"type": "signal_quality", "kind": "spike", ...,
"action": "held last good value"}``; ``{"type": "signal_quality", "kind": "saturated", ...}``.

Every decision carries ``quality``: ``"good"``, ``"noisy"`` (flags in ``quality_flags``),
``"unusable"``, or ``"unassessed"`` (ECG beats in the first ~3 s after a start or a gap,
before the quality indices have enough signal: their ``sqi`` is ``{}``; they are scored
and shown, never counted as good); with ``withhold_unusable`` an unusable decision keeps
its place but carries ``class`` and ``probs`` None (``"withheld": true``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import Manifest, read_manifest, verify_artifact
from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.preprocess.resample import Resampler, rate_ratio
from pipeline.read.channels import resolve_channels
from pipeline.read.record import SignalSpec
from pipeline.read.units import unit_scale
from pipeline.runtime import quality as sqi
from pipeline.runtime.qrs import PanTompkins
from pipeline.window.ecg import normalise_windows
from pipeline.window.rr import RR_FEATURE_NAMES, RRFeatures
from pipeline.window.side import Standardiser
from pipeline.window.template import BeatTemplate


class SessionError(BiosigError):
    """Input a session cannot take (wrong dtype, channels, units or rate)."""


#: The quality of a decision no check could judge yet (ECG: the first ~3 s after a start or
#: a gap, before the quality indices have the signal they need). Never "good".
UNASSESSED = "unassessed"


class ChunkedWindows:
    """A chunk-plus-state graph used as a whole-window model: each window is carried
    through it chunk by chunk (what an ECG session needs from a ``stream_*`` artifact)."""

    def __init__(self, stepper, units: list[int], chunk_len: int):
        self.stepper, self.units, self.chunk_len = stepper, list(units), int(chunk_len)

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        from pipeline.runtime.backends import run_chunks

        side = inputs.get("side")
        return np.stack(
            [
                run_chunks(
                    self.stepper.step,
                    inputs["signal"][i],
                    self.units,
                    self.chunk_len,
                    None if side is None else side[i],
                )
                for i in range(len(inputs["signal"]))
            ]
        )


def open_model(folder: str | Path, manifest: Manifest, artifact: str, num_threads: int = 1):
    """A runner for one artifact of the folder, hash-checked: ``predict`` for whole-window
    graphs, ``step`` for streaming graphs (the numpy reference and the generated C,
    ``c_float32`` / ``c_int8``, have both)."""
    from pipeline.runtime import backends
    from pipeline.runtime.c_backend import C_ARTIFACTS, open_library
    from pipeline.runtime.reference import NumpyLSTM

    entry = manifest.artifact(artifact)
    runnable = [
        a.name
        for a in manifest.artifacts
        if a.ok
        and (
            (a.format in ("tflite", "onnx", "npz") and a.graph in ("whole-window", "stream", "weights"))
            or (a.format == "c" and a.name in C_ARTIFACTS)
        )
    ]
    if entry is None or entry.name not in runnable:
        raise SessionError(f"{folder}: no usable artifact '{artifact}' (choose from {runnable})")
    if entry.format == "c":  # the generated C, as a shared library
        return open_library(folder, manifest, artifact)
    try:
        data = verify_artifact(Path(folder), entry)
        stream = entry.graph == "stream"
        if entry.format == "tflite":
            return (backends.LiteRTStream if stream else backends.LiteRTModel)(data, num_threads)
        if entry.format == "onnx":
            return (backends.OnnxStream if stream else backends.OnnxModel)(data, num_threads)
        import io

        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return NumpyLSTM({k: arrays[k] for k in arrays.files})
    except ImportError as err:
        raise SessionError(f"{folder}: '{artifact}' needs an interpreter that is not installed: {err}") from None
    except ValueError as err:  # numpy refusing an object array (a pickle), an interpreter refusing bytes
        raise SessionError(
            f"{folder}/{entry.file}: cannot be loaded as a {entry.format} model: {str(err).splitlines()[0][:200]}"
        ) from None


@dataclass
class _Stretch:
    """A condition that flags decisions while it lasts (clipping, noise): its events."""

    kind: str
    active: bool = False
    last_sample: int = -1
    spans: list = field(default_factory=list)  # [start, stop) input samples, recent ones


class StreamSession:
    """What every streaming session shares: the checked manifest and model, the input
    contract (channels, units, rate), input checks (NaN/inf, flat line, out of range,
    spikes, clipping) with their events and restarts, and sample counting. Subclasses
    implement ``_restart()`` and ``_process(chunk) -> events`` at the model's input rate.

    Parameters
    ----------
    folder : artifact folder from ``biosig-edge export`` (manifest and hashes checked)
    artifact : which model to run
    source : what the pushed samples are (rate, channel labels, units); default the
        model's own input (its rate, channels in its order, its units)
    channel_map : {model channel: input label} for channels the aliases do not match
    flat_s : a channel holding one value this long is a flat line (lead-off)
    spike_s : out-of-range samples are held for at most this long, then a gap
    withhold_unusable : emit unusable decisions without class or probabilities
    manifest : the folder's checked :class:`Manifest`, if already read (hashes once)
    block_s : pushes shorter than this are gathered and processed together (0: never)
    """

    KIND = ""
    KIND_TEXT = ""

    def __init__(
        self,
        folder: str | Path,
        artifact: str,
        num_threads: int = 1,
        flat_s: float = 1.0,
        source: SignalSpec | None = None,
        channel_map: dict[str, str] | None = None,
        spike_s: float = 0.05,
        withhold_unusable: bool = False,
        manifest: Manifest | None = None,
        trusted_key: str | Path | None = None,
        block_s: float = 0.5,
    ):
        self.folder = Path(folder)
        self.manifest = manifest or read_manifest(self.folder, trusted_key=trusted_key)
        m = self.manifest
        if m.kind != self.KIND:
            raise SessionError(f"{folder}: a '{m.kind}' model, not {self.KIND_TEXT}")
        self.model = open_model(folder, m, artifact, num_threads)
        self.artifact = artifact
        self.spec = PreprocessSpec.from_dict(m.preprocess)
        self.sos = np.asarray(m.preprocess["sos"], dtype=np.float64).reshape(-1, 6)
        self.classes = list(m.classes)
        self.n_channels = len(m.channels)
        self.withhold_unusable = bool(withhold_unusable)
        self.source = source or SignalSpec(self.spec.fs_in_hz, tuple(m.channels), (m.input.units,) * self.n_channels)
        self._bind_source(channel_map)
        self.flat_len = max(2, int(round(flat_s * self.fs_src)))
        self.spike_len = max(1, int(round(spike_s * self.fs_src)))
        self.block_len = max(1, int(round(block_s * self.fs_src)))

    # ----------------------------------------------------------------- model contract

    def _check_model(self, model, stepper=None) -> None:
        """Hold the model against the manifest that describes it, once, at load: the state
        sizes of a chunk-plus-state graph (``stepper``) and the number of outputs, one per
        class name, from one probe on zeros shaped as the manifest says. A manifest that
        disagrees with its model (edited and re-sealed, or from another export) would
        otherwise fail at the first decision of a class it does not name, or mid-stream."""
        m = self.manifest
        where = f"{self.folder}/manifest.json"
        n_side = len(m.side_features.names) if m.kind == "ecg-beats" else 0
        try:
            if stepper is not None:
                if m.streaming is None:
                    raise SessionError(
                        f"{where}: '{self.artifact}' is a chunk-plus-state graph, but 'streaming' is missing"
                    )
                sizes = list(m.streaming.state_sizes)
                own = getattr(stepper, "units", None)  # the reference and the generated C know theirs
                if own is not None and list(own) != sizes:
                    raise SessionError(
                        f"{where}: 'streaming.state_sizes' {sizes} does not match '{self.artifact}' (states {list(own)})"
                    )
                feed = {"chunk": np.zeros((1, m.streaming.chunk_len, m.window.n_channels), np.float32)}
                for i, u in enumerate(sizes):
                    feed[f"h_{i}"] = feed[f"c_{i}"] = np.zeros((1, u), np.float32)
                if n_side:
                    feed["side"] = np.zeros((1, n_side), np.float32)
                probs, states = stepper.step(feed)
                got = [int(np.shape(h)[-1]) for h in states[0::2]]
                if got != sizes:
                    raise SessionError(
                        f"{where}: 'streaming.state_sizes' {sizes} does not match '{self.artifact}' (states {got})"
                    )
            if hasattr(model, "predict"):
                probs = model.predict(
                    {
                        "signal": np.zeros((1, m.window.n_steps, m.window.n_channels), np.float32),
                        "side": np.zeros((1, n_side), np.float32),
                    }
                )
        except BiosigError:
            raise
        except Exception as err:  # any interpreter's refusal of inputs shaped as the manifest says
            raise SessionError(
                f"{where}: '{self.artifact}' does not take the inputs the manifest describes "
                f"(window {m.window.n_steps} x {m.window.n_channels}, {n_side} side features"
                + (f", states {list(m.streaming.state_sizes)}" if stepper is not None and m.streaming else "")
                + f"): {str(err).splitlines()[0][:160] if str(err) else type(err).__name__}"
            ) from None
        n_out = int(np.shape(probs)[-1])
        if n_out != len(self.classes):
            raise SessionError(
                f"{where}: 'classes' names {len(self.classes)} classes {list(self.classes)}, but '{self.artifact}' "
                f"has {n_out} outputs"
            )

    # ----------------------------------------------------------------- input contract

    def _bind_source(self, channel_map) -> None:
        """Channels by name, units converted, rate checked: or a SessionError saying why."""
        m, src = self.manifest, self.source
        where = "the input"
        try:
            self.columns = resolve_channels(
                list(m.channels), list(src.channels), m.input.channel_aliases, channel_map, where
            )
            self.scale = np.array(
                [unit_scale(src.units[c], m.input.units, f"input channel '{src.channels[c]}'") for c in self.columns]
            )
        except BiosigError as err:
            raise SessionError(str(err)) from None
        self.fs_src = float(src.fs_hz)
        if self.fs_src < m.input.min_fs_hz:
            raise SessionError(
                f"the input is sampled at {self.fs_src:g} Hz; this model's band reaches "
                f"{m.preprocess.get('lowpass_hz') or self.spec.fs_out_hz / 2:g} Hz, which needs at least "
                f"{m.input.min_fs_hz:g} Hz (a {self.fs_src:g} Hz recording holds nothing above "
                f"{self.fs_src / 2:g} Hz)"
            )
        self.resample = abs(self.fs_src - self.spec.fs_in_hz) > 1e-9 * self.spec.fs_in_hz
        #: input samples per model-input sample: the resampler's own ratio M / L, which is
        #: the rates' quotient unless the input rate has more digits than it can hold
        #: (then decisions are mapped back with the ratio the resampler really used)
        self.src_per_in = self.fs_src / self.spec.fs_in_hz
        if self.resample:
            up, down = rate_ratio(self.fs_src, self.spec.fs_in_hz)  # refuses rates it cannot take
            self.src_per_in = down / up
        lo, hi = m.input.valid_range
        self.valid_low, self.valid_high = lo, hi
        self.full_scale = None
        if src.full_scale is not None:
            fs_lo = np.array([src.full_scale[c][0] for c in self.columns]) * self.scale
            fs_hi = np.array([src.full_scale[c][1] for c in self.columns]) * self.scale
            self.full_scale = (np.minimum(fs_lo, fs_hi), np.maximum(fs_lo, fs_hi))

    def describe_input(self) -> str:
        """One line: how the input feeds the model (for the command line's stderr)."""
        src, m = self.source, self.manifest
        pairs = ", ".join(f"{src.channels[c]}->{name}" for c, name in zip(self.columns, m.channels))
        units = sorted({src.units[c] for c in self.columns})
        rate = f"{self.fs_src:g} Hz resampled to {self.spec.fs_in_hz:g} Hz" if self.resample else f"{self.fs_src:g} Hz"
        if self.resampler is not None and self.resampler.rate_error:
            # A rate with more digits than a ratio of at most MAX_PHASES phases holds.
            rate += f" (taken as {self.resampler.fs_in_as()} Hz, relative error {self.resampler.rate_error:.1e})"
        return f"input: {pairs}; {'/'.join(units)} -> {m.input.units}; {rate}"

    # ----------------------------------------------------------------- streaming

    def reset(self) -> None:
        """Forget the recording: every filter, detector, tracker and buffer."""
        self.n_in_ = 0  # input samples pushed since the session began
        self.gap_start_: int | None = None  # input sample where a bad stretch began
        self.run_ = np.zeros(self.n_channels, dtype=np.int64)  # equal-sample pairs so far, per channel
        self.last_sample_: np.ndarray | None = None  # the last pushed sample (n_channels,)
        self.oor_run_ = 0  # out-of-range samples in a row so far
        self.last_good_: np.ndarray | None = None  # the last in-range sample (held over spikes)
        self.flags_ = {k: _Stretch(k) for k in ("spike", "saturated")}
        self.pending_in_: list[np.ndarray] = []  # pushes gathered until block_s has arrived
        self.n_pending_ = 0
        self._restart_all(0)

    def _restart(self) -> None:
        """The subclass's fresh state (filters, detectors, buffers) at a segment's start."""
        raise NotImplementedError

    def _process(self, x: np.ndarray) -> list[dict]:
        """Good samples (n, channels) at the model's input rate -> the events they complete."""
        raise NotImplementedError

    def _restart_all(self, at_sample: int) -> None:
        self.segment_start_ = at_sample  # input sample of model-input sample 0
        self.n_model_in_ = 0  # model-input-rate samples since the restart
        self.resampler = Resampler(self.fs_src, self.spec.fs_in_hz, self.n_channels) if self.resample else None
        self._restart()

    def to_input_sample(self, k_in: np.ndarray | int) -> np.ndarray | int:
        """Input-rate sample index of model-input-rate sample ``k_in`` (since the restart)."""
        if not self.resample:
            return self.segment_start_ + k_in
        return self.segment_start_ + np.round(np.asarray(k_in) * self.src_per_in).astype(np.int64)

    def push(self, samples) -> list[dict]:
        """Push samples of shape (n, n_input_channels) as the input declares them; return
        the events they complete (decisions and signal-quality events), in sample order.

        Pushes shorter than ``block_s`` are gathered and processed together once that
        much has arrived: the per-sample work is vectorised, and its fixed cost per call
        would otherwise dominate small pushes. A decision comes at most ``block_s`` later
        than it could (against the ~2.3 s an ECG beat waits for its quality window).
        """
        x = self._as_array(samples)
        if len(x) == 0:
            return []
        self.pending_in_.append(x)
        self.n_pending_ += len(x)
        if self.n_pending_ < self.block_len:
            return []
        return self._process_pending()

    def _process_pending(self) -> list[dict]:
        if not self.pending_in_:
            return []
        x = self.pending_in_[0] if len(self.pending_in_) == 1 else np.concatenate(self.pending_in_)
        self.pending_in_, self.n_pending_ = [], 0
        x = x[:, self.columns] * self.scale  # model channels, model units
        events: list[dict] = []
        finite = np.isfinite(x).all(axis=1)
        flat, flat_channels = self._flat_mask(x)
        held, out_of_range = self._spikes(x, finite)
        # Quality events inside good stretches (a spike, clipping begins), by position.
        marks = (self._spike_marks(held) if held.any() else []) + self._saturation_marks(x, finite)
        good = finite & ~flat & ~out_of_range
        # Runs of good and bad samples; a bad run may continue from the previous chunk.
        edges = np.flatnonzero(np.diff(good.astype(np.int8))) + 1
        for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(x)]])):
            at = self.n_in_ + int(a)
            if good[a]:
                if self.gap_start_ is not None:
                    events.append(
                        {
                            "type": "signal_quality",
                            "kind": "recovered",
                            "sample": at,
                            "time_s": at / self.fs_src,
                            "gap_samples": at - self.gap_start_,
                        }
                    )
                    self._restart_all(at)
                    self.gap_start_ = None
                # Feed the run piece by piece between its marks, so that every event comes
                # after the decisions completed before it, whatever the chunking.
                start = a
                for offset, event in sorted((m for m in marks if a <= m[0] < b), key=lambda m: m[0]):
                    events += self._feed(x[start:offset])
                    events.append(event)
                    start = offset
                events += self._feed(x[start:b])
            elif self.gap_start_ is None:
                self.gap_start_ = at
                if not finite[a]:
                    kind, chans = "nonfinite", np.flatnonzero(~np.isfinite(x[a]))
                elif flat[a]:
                    kind, chans = "flat", np.flatnonzero(flat_channels[a])
                else:
                    kind = "out_of_range"
                    chans = np.flatnonzero((x[a] < self.valid_low) | (x[a] > self.valid_high))
                events.append(
                    {
                        "type": "signal_quality",
                        "kind": kind,
                        "sample": at,
                        "time_s": at / self.fs_src,
                        "channels": [self.manifest.channels[i] for i in chans],
                        "action": "state reset",
                    }
                )
        self.n_in_ += len(x)
        return events

    def flush(self) -> list[dict]:
        """The input has ended: process what is gathered, decide what can still be decided
        (for ECG, beats whose window has closed and whose quality window the stream did
        not reach), and return those events. The session can take more samples after it,
        as if they followed."""
        events = self._process_pending()
        if self.gap_start_ is not None:
            return events
        return events + self._flush()

    def _flush(self) -> list[dict]:
        return []

    def _as_array(self, samples) -> np.ndarray:
        try:
            x = np.asarray(samples)
        except ValueError:
            raise SessionError(
                f"samples must be a rectangular array of numbers (n, {len(self.source.channels)}); "
                f"got rows of different lengths"
            ) from None
        if x.dtype.kind not in "fiu":
            raise SessionError(f"samples must be numbers, got dtype {x.dtype}")
        n_src = len(self.source.channels)
        if x.ndim == 1 and n_src == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != n_src:
            raise SessionError(
                f"samples must have shape (n, {n_src}) for channels {list(self.source.channels)}, got {x.shape}"
            )
        return x.astype(np.float64)

    def _feed(self, x: np.ndarray) -> list[dict]:
        """Good input samples -> the model's input rate -> the subclass."""
        if self.resampler is not None:
            x = self.resampler.process(x)
        if len(x) == 0:
            return []
        events = self._process(x)
        self.n_model_in_ += len(x)
        return events

    def _flat_mask(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True where some channel has held one value for at least ``flat_s`` (lead-off),
        and the (n, channels) mask of which channels are flat.

        Causal: a flat line is known once it has lasted flat_s; run lengths carry over
        between chunks, so the mask does not depend on how the signal was chunked.
        """
        n = len(x)
        first = self.last_sample_[None] if self.last_sample_ is not None else np.full((1, x.shape[1]), np.nan)
        prev = np.concatenate([first, x[:-1]])
        same = x == prev  # (n, channels); NaN never equal
        idx = np.arange(n)[:, None]
        breaks = np.where(~same, idx, -1)
        last_break = np.maximum.accumulate(breaks, axis=0)
        run = np.where(last_break >= 0, idx - last_break, self.run_[None, :] + idx + 1)
        self.run_ = run[-1].copy()
        self.last_sample_ = x[-1].copy()
        flat_ch = run >= self.flat_len - 1
        return np.any(flat_ch, axis=1), flat_ch

    def _spikes(self, x: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-range samples: held at the last good value for up to ``spike_s`` (a
        spike), then a gap. Changes ``x`` in place; returns (held mask, gap mask)."""
        with np.errstate(invalid="ignore"):
            oor = finite & ((x < self.valid_low) | (x > self.valid_high)).any(axis=1)
        n = len(x)
        if not oor.any():  # the usual case: nothing to hold
            self.oor_run_ = 0
            if finite[-1]:
                self.last_good_ = x[-1].copy()
            elif finite.any():
                self.last_good_ = x[np.flatnonzero(finite)[-1]].copy()
            return oor, oor
        idx = np.arange(n)
        breaks = np.where(~oor, idx, -1)
        last_break = np.maximum.accumulate(breaks)
        run = np.where(last_break >= 0, idx - last_break, self.oor_run_ + idx + 1)  # 0 where in range
        self.oor_run_ = int(run[-1])
        gap = oor & (run > self.spike_len)
        held = oor & ~gap
        if held.any():
            # Forward-fill the last in-range sample over held ones (carried across pushes).
            good_idx = np.where(~oor & finite, idx, -1)
            last = np.maximum.accumulate(good_idx)
            prev = self.last_good_ if self.last_good_ is not None else np.zeros(x.shape[1])
            fill = np.where(last[:, None] >= 0, x[np.maximum(last, 0)], prev[None, :])
            x[held] = fill[held]
        in_range = np.flatnonzero(~oor & finite)
        if len(in_range):
            self.last_good_ = x[in_range[-1]].copy()
        return held, gap

    @staticmethod
    def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, stops) of the runs of True in a 1-D mask."""
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
        return edges[::2], edges[1::2]

    def _spike_marks(self, held: np.ndarray) -> list[tuple[int, dict]]:
        """An event where a held spike begins; its span is kept to flag decisions."""
        marks = []
        flag = self.flags_["spike"]
        for s, e in zip(*self._runs(held)):
            at, stop = self.n_in_ + int(s), self.n_in_ + int(e)
            if flag.spans and flag.spans[-1][1] == at:  # the spike goes on from the last push
                flag.spans[-1][1] = stop
                continue
            flag.spans.append([at, stop])
            marks.append(
                (
                    int(s),
                    {
                        "type": "signal_quality",
                        "kind": "spike",
                        "sample": at,
                        "time_s": at / self.fs_src,
                        "action": "held last good value; decisions over it flagged",
                    },
                )
            )
        return marks

    def _saturation_marks(self, x: np.ndarray, finite: np.ndarray) -> list[tuple[int, dict]]:
        """Samples at the converter's full scale (clipping) are remembered to flag the
        decisions over them; an event where clipping begins after 2 s without any."""
        if self.full_scale is None:
            return []
        lo, hi = self.full_scale
        tol = 1e-6 * np.maximum(np.abs(lo), np.abs(hi))
        with np.errstate(invalid="ignore"):
            clipped = finite & ((x <= lo + tol) | (x >= hi - tol)).any(axis=1)
        marks = []
        flag = self.flags_["saturated"]
        quiet = int(2 * self.fs_src)
        for s, e in zip(*self._runs(clipped)):
            at, stop = self.n_in_ + int(s), self.n_in_ + int(e)
            if not flag.spans or at - flag.spans[-1][1] > quiet:
                marks.append(
                    (
                        int(s),
                        {
                            "type": "signal_quality",
                            "kind": "saturated",
                            "sample": at,
                            "time_s": at / self.fs_src,
                            "action": "decisions over clipped samples flagged",
                        },
                    )
                )
            if flag.spans and at <= flag.spans[-1][1]:
                flag.spans[-1][1] = stop
            else:
                flag.spans.append([at, stop])
        return marks

    def _flags_over(self, start: int, stop: int) -> list[str]:
        """Input-quality flags ("spike", "saturated") touching input samples [start, stop)."""
        out = []
        for kind, flag in self.flags_.items():
            flag.spans = [s for s in flag.spans if s[1] > start - int(30 * self.fs_src)]  # keep 30 s
            if any(s[0] < stop and s[1] > start for s in flag.spans):
                out.append(kind)
        return out

    def _decision(self, event: dict, probs: np.ndarray, flags: list[str]) -> dict:
        """Fill a decision's class, probabilities and quality: ``unusable`` if a flag says
        so, else ``noisy`` if any input or noise flag is set, else ``unassessed`` if no
        quality check could run yet, else ``good``."""
        shown = [f for f in flags if f not in ("unusable", UNASSESSED)]
        if "unusable" in flags:
            quality = "unusable"
        elif shown:
            quality = "noisy"
        else:
            quality = UNASSESSED if UNASSESSED in flags else "good"
        event["quality"] = quality
        event["quality_flags"] = shown
        if quality == "unusable" and self.withhold_unusable:
            event.update({"class": None, "probs": None, "withheld": True})
        else:
            event.update({"class": self.classes[int(np.argmax(probs))], "probs": [float(p) for p in probs]})
        return event


@dataclass
class _PendingBeat:
    """A detected beat on its way to a decision (model-rate indices since the restart)."""

    r: int
    features: np.ndarray | None = None  # RR features, once the next beat gave its post-RR
    r_next: int | None = None
    window: np.ndarray | Literal[False] | None = None  # the closed window; False: off the segment
    sqi: dict | None = None  # the quality indices, taken at r + sqi_lag
    flags: list = field(default_factory=list)


class ECGSession(StreamSession):
    """Beat-by-beat classification of a streamed ECG.

    Parameters
    ----------
    folder : artifact folder from ``biosig-edge export`` (manifest and hashes checked)
    artifact : which model to run (``tflite_float32``, ``onnx_float32``, ``reference_float32``,
        or a ``stream_*`` graph, carried chunk by chunk over each beat window)
    (the rest: see :class:`StreamSession`)

    Every beat's quality (:mod:`pipeline.runtime.quality`: bSQI from a second QRS detector,
    kSQI, pSQI, nSQI over the 6 s around it) is taken when the signal has reached
    ``SQI_WINDOW_S[1]`` (+ 0.3 s for both detectors to settle) past the beat, at exactly
    that sample whatever the chunking; a decision comes when its window has closed, the
    next beat is known and its quality is taken: about 2.3 s after the R peak.
    """

    KIND, KIND_TEXT = "ecg-beats", "an ECG beat classifier"

    def __init__(
        self, folder: str | Path, artifact: str = "tflite_float32", num_threads: int = 1, flat_s: float = 1.0, **kw
    ):
        super().__init__(folder, artifact, num_threads, flat_s, **kw)
        m = self.manifest
        stepper = None
        # A chunk-plus-state graph is carried chunk by chunk over each window, whatever else
        # its runner offers (the ONNX stream runner inherits a whole-window predict that
        # would feed it inputs it does not have).
        entry = m.artifact(artifact)
        graph = entry.graph if entry else None
        if graph == "stream" or not hasattr(self.model, "predict"):
            stepper = self.model
            if m.streaming is None:
                raise SessionError(
                    f"{folder}/manifest.json: '{artifact}' is a chunk-plus-state graph, but 'streaming' is missing"
                )
            self.model = ChunkedWindows(self.model, list(m.streaming.state_sizes), m.streaming.chunk_len)
        self._check_model(self.model, stepper)
        n_before, n_after = m.window.n_before_samples, m.window.n_after_samples
        # read_manifest requires all four of an ecg-beats model.
        assert n_before is not None and n_after is not None and m.rr is not None and m.template is not None
        self.n_before, self.n_after = n_before, n_after
        self.rr_spec, self.template_spec = m.rr, m.template
        self.side_cols = [RR_FEATURE_NAMES.index(n) for n in m.side_features.names]
        self.standardise = Standardiser.from_manifest(
            {"mean": m.side_features.mean, "std": m.side_features.std, "clip": m.side_features.clip}
        )
        self.normalise = m.window.normalise
        fs = self.spec.fs_out_hz
        # 12 s of model-rate samples: windows, search-back and the quality window.
        self.buffer_len = int(12 * fs)
        before_s, after_s = sqi.SQI_WINDOW_S
        self.sqi_before, self.sqi_after = int(round(before_s * fs)), int(round(after_s * fs))
        self.sqi_lag = self.sqi_after + int(round(0.3 * fs))
        self.match_tolerance = int(round(sqi.MATCH_S * fs))
        self.reset()

    def _restart(self) -> None:
        """Fresh state (after a gap or at the start)."""
        fs = self.spec.fs_out_hz
        self.pre = Preprocessor(self.spec, self.n_channels, sos=self.sos)
        self.qrs = PanTompkins(fs)
        self.qrs2 = sqi.LengthTransformQRS(fs)
        self.rr = RRFeatures(self.rr_spec.local_beats, self.rr_spec.average_s)
        self.template = BeatTemplate(self.template_spec.alpha, self.template_spec.min_scale)
        self.ring = np.zeros((self.buffer_len, self.n_channels), np.float32)
        self.n_out_ = 0  # model-rate samples since the restart
        self.pending_: list[_PendingBeat] = []
        self.beats_a_: list[int] = []  # Pan-Tompkins beats (recent), model rate
        self.beats_b_: list[int] = []  # curve-length beats (recent)
        self.level_ = "good"  # the last decision's quality level
        self.nsqi_history_: deque = deque(maxlen=sqi.NREF_BEATS)  # recent beats' nSQI (its reference)

    def _process(self, x: np.ndarray) -> list[dict]:
        y = self.pre.process(x)  # model-rate samples
        events = []
        # In pieces of at most one second (a window is copied out of the ring before new
        # samples overwrite it, however large the push), cut wherever a pending beat's
        # quality is due, so that it is always taken at the same sample.
        step = int(self.spec.fs_out_hz)
        pos = 0
        while pos < len(y):
            due = [b.r + self.sqi_lag for b in self.pending_ if b.sqi is None and b.r + self.sqi_lag > self.n_out_]
            end = min(len(y), pos + step, pos + (min(due) - self.n_out_) if due else len(y))
            piece = y[pos:end]
            pos = end
            self.ring[(self.n_out_ + np.arange(len(piece))) % self.buffer_len] = piece
            self.n_out_ += len(piece)
            self.beats_b_ += self.qrs2.push(piece[:, 0])
            for r in self.qrs.push(piece[:, 0]):
                self.beats_a_.append(r)
                features = self.rr.push(r / self.spec.fs_out_hz)
                if self.pending_ and features is not None:
                    self.pending_[-1].features = features  # the previous beat's post-RR is known
                    self.pending_[-1].r_next = r
                self.pending_.append(_PendingBeat(r))
            for beat in self.pending_:
                if beat.sqi is None and beat.r + self.sqi_lag <= self.n_out_:
                    beat.sqi = self._sqi(beat.r)
            events += self._decide_ready()
        return events

    def _flush(self) -> list[dict]:
        for beat in self.pending_:
            if beat.sqi is None:
                beat.sqi = self._sqi(beat.r)  # over the signal there is
        return self._decide_ready()

    def _sqi(self, r: int) -> dict:
        """bSQI, kSQI, pSQI, nSQI over [r - 4 s, r + 2 s] (what the signal since the restart holds)."""
        # Not over the detectors' first 2 s after a (re)start: they are still learning.
        learn = self.qrs.learn
        lo, hi = max(r - self.sqi_before, learn, self.n_out_ - self.buffer_len), min(r + self.sqi_after, self.n_out_)
        keep_from = r - self.sqi_before - self.sqi_lag
        self.beats_a_ = [b for b in self.beats_a_ if b >= keep_from]
        self.beats_b_ = [b for b in self.beats_b_ if b >= keep_from]
        if hi - lo < 3 * self.spec.fs_out_hz:
            return {}  # too little signal since the restart
        a = np.array([b for b in self.beats_a_ if lo <= b < hi], dtype=np.int64)
        b = np.array([c for c in self.beats_b_ if lo <= c < hi], dtype=np.int64)
        seg = self.ring[np.arange(lo, hi) % self.buffer_len, 0].astype(np.float64)
        noise = sqi.nsqi(seg, a - lo, b - lo, self.spec.fs_out_hz, self.match_tolerance)
        # The reference includes this beat: right after a start it is the beat's own level.
        self.nsqi_history_.append(noise)
        reference = sqi.nsqi_reference(self.nsqi_history_)
        return {
            "bsqi": round(sqi.bsqi(a, b, self.match_tolerance), 3),
            "nsqi": round(noise, 3) if noise == noise else None,
            # nSQI over the patient's clean level: how much noise the stretch adds.
            "nrel": round(noise / reference, 2) if noise == noise else None,
            "ksqi": round(sqi.kurtosis(seg), 2),
            "psqi": round(sqi.power_ratio(seg, self.spec.fs_out_hz), 3),
            # This beat found by the second detector too.
            "confirmed": bool(len(b) and np.min(np.abs(b - r)) <= self.match_tolerance),
        }

    def _decide_ready(self) -> list[dict]:
        """Copy out windows that have closed; classify beats whose RR features and quality
        are known."""
        for beat in self.pending_:
            r = beat.r
            if beat.window is None and r + self.n_after <= self.n_out_:
                if r - self.n_before < 0 or self.n_out_ - (r - self.n_before) > self.buffer_len:
                    beat.window = False  # off the segment's start / overwritten
                else:
                    beat.window = self.ring[np.arange(r - self.n_before, r + self.n_after) % self.buffer_len]
        events = []
        while self.pending_:
            beat = self.pending_[0]
            if beat.window is None or (beat.features is None and len(self.pending_) == 1) or beat.sqi is None:
                break  # window open, next beat or quality not yet known
            self.pending_.pop(0)
            if beat.window is False:
                continue
            window = beat.window
            if self.normalise == "template":
                window = self.template.push(window)  # every clean beat feeds the template
            if beat.features is None or beat.r_next is None:
                continue  # the first beat: no pre-RR (the next beat gives both at once)
            events += self._classify(beat, window, beat.features, beat.r_next)
        return events

    def _classify(self, beat: _PendingBeat, window: np.ndarray, features: np.ndarray, r_next: int) -> list[dict]:
        """The decision on a beat whose window closed (window (n_steps, n_channels)), with its
        RR features (features (n_rr,)) known from the next beat at ``r_next``."""
        r = beat.r
        if self.normalise == "zscore":
            window = normalise_windows(window[None], "zscore")[0]
        side = self.standardise(features[None, self.side_cols])[0]
        probs = self.model.predict({"signal": window[None], "side": side[None]})[0]
        d = self.spec.decimate
        sample = int(self.to_input_sample(r * d))
        # When the inputs existed: the window closed, the next beat (post-RR) occurred and
        # the quality window was complete.
        # (At a flush, what the stream did not reach: its last sample.)
        ready = int(self.to_input_sample(min(max(r + self.n_after, r_next, r + self.sqi_lag), self.n_out_) * d))
        first = int(self.to_input_sample((r - self.n_before) * d))
        last = int(self.to_input_sample((r + self.n_after) * d))
        flags = self._flags_over(first, last)
        decision = {
            "type": "beat",
            "sample": sample,
            "time_s": sample / self.fs_src,
            "inputs_ready_at_sample": ready,
            "sqi": beat.sqi,
        }
        events = []
        if not beat.sqi:
            # Too little signal since the (re)start for any index (the first ~3 s): nothing
            # was judged, so the decision says so rather than "good"; the stretch's level
            # (and its events) waits for the first assessed beat.
            return [self._decision(decision, probs, [*flags, UNASSESSED])]
        level, reasons = sqi.ecg_level(beat.sqi["bsqi"], beat.sqi["ksqi"], beat.sqi["psqi"], beat.sqi.get("nrel"))
        if level != self.level_:  # a noisy stretch begins, worsens or ends
            event = {
                "type": "signal_quality",
                "kind": level if level != "good" else "clean",
                "sample": sample,
                "time_s": sample / self.fs_src,
                "sqi": beat.sqi,
            }
            if level != "good":
                event["reasons"] = reasons
                event["action"] = (
                    "decisions withheld" if level == "unusable" and self.withhold_unusable else "decisions flagged"
                )
            events.append(event)
            self.level_ = level
        if level != "good":
            flags = [*flags, "noisy", *(["unusable"] if level == "unusable" else [])]
        if not beat.sqi["confirmed"]:
            flags = [*flags, "unconfirmed", "unusable"]  # the second detector saw no beat here
        elif (
            level != "good"
            and sqi.out_of_rhythm(features[0], features[1], features[2])
            and beat.sqi["bsqi"] < sqi.BSQI_NOISY
        ):
            # In noise, a "beat" far off the local rhythm is more likely noise than a beat.
            flags = [*flags, "out_of_rhythm", "unusable"]
        events.append(self._decision(decision, probs, flags))
        return events


@dataclass
class _OpenWindow:
    """An EEG window being carried through the model chunk by chunk."""

    start_chunk: int
    states: list


class EEGSession(StreamSession):
    """Overlapping-window EEG classification, carried chunk by chunk.

    Every window (``n_steps`` model-rate samples, one starting every ``hop_samples``) has
    its own LSTM state; each completed chunk of ``chunk_len`` model-rate samples advances
    every window that contains it, so each sample goes through the model once per window,
    never a whole window again at every hop. A window's decision is made as its last
    chunk completes, with its quality (:func:`pipeline.runtime.quality.eeg_window_quality`:
    amplitude against what training saw, mains interference in the raw input).

    Events: ``{"type": "window", "start_sample", "end_sample", "time_s", "class", "probs",
    "quality", "quality_flags"}`` (input-rate samples; ``time_s`` of the window's end) and
    the same ``signal_quality`` events as :class:`ECGSession`.
    """

    KIND, KIND_TEXT = "eeg-windows", "an EEG window classifier"

    def __init__(
        self,
        folder: str | Path,
        artifact: str = "stream_tflite_float32",
        num_threads: int = 1,
        flat_s: float = 1.0,
        **kw,
    ):
        super().__init__(folder, artifact, num_threads, flat_s, **kw)
        if not hasattr(self.model, "step"):
            raise SessionError(f"{folder}: '{artifact}' is a whole-window graph; choose a stream_* artifact")
        self._check_model(None, self.model)
        m = self.manifest
        # _check_model refused a chunk-plus-state graph without 'streaming'; read_manifest
        # requires an eeg-windows model's hop.
        assert m.streaming is not None and m.window.hop_samples is not None
        self.chunk_len = m.streaming.chunk_len
        self.units = list(m.streaming.state_sizes)
        self.n_steps = m.window.n_steps
        self.hop_len = m.window.hop_samples
        notch = m.preprocess.get("notch_hz")
        self.mains_hz = (notch,) if notch else (50.0, 60.0)
        self.amplitude_limit = m.amplitude_p999
        self.reset()

    def _restart(self) -> None:
        self.pre = Preprocessor(self.spec, self.n_channels, sos=self.sos)
        self.n_chunks_ = 0  # chunks completed since the restart
        # Model-rate samples in the model's channels (a band-power front end makes more
        # channels than the input has).
        n_model = self.pre.n_out_channels
        self.partial_ = np.zeros((0, n_model), np.float32)
        self.windows_: list[_OpenWindow] = []
        d = self.spec.decimate
        # The last window's model input, and its raw input at the model's input rate.
        self.pre_ring_ = np.zeros((self.n_steps + self.chunk_len, n_model), np.float32)
        self.raw_ring_ = np.zeros(((self.n_steps + 2 * self.chunk_len) * d, self.n_channels))
        self.n_raw_ = 0

    def _process(self, x: np.ndarray) -> list[dict]:
        n = len(self.raw_ring_)
        self.raw_ring_[(self.n_raw_ + np.arange(len(x[-n:]))) % n] = x[-n:]
        self.n_raw_ += len(x)
        y = np.concatenate([self.partial_, self.pre.process(x)])
        n_full = len(y) // self.chunk_len
        self.partial_ = y[n_full * self.chunk_len :]
        events = []
        per_window = self.n_steps // self.chunk_len
        hop_chunks = self.hop_len // self.chunk_len
        for j in range(n_full):
            k = self.n_chunks_  # index of this chunk
            if k % hop_chunks == 0:
                self.windows_.append(_OpenWindow(k, [np.zeros((1, u), np.float32) for u in self.units for _ in (0, 1)]))
            chunk = y[j * self.chunk_len : (j + 1) * self.chunk_len][None].astype(np.float32)
            ring = len(self.pre_ring_)
            self.pre_ring_[(k * self.chunk_len + np.arange(self.chunk_len)) % ring] = chunk[0]
            for window in self.windows_:
                feed = {"chunk": chunk}
                for i in range(len(self.units)):
                    feed[f"h_{i}"], feed[f"c_{i}"] = window.states[2 * i], window.states[2 * i + 1]
                probs, window.states = self.model.step(feed)
                if k - window.start_chunk + 1 == per_window:
                    events.append(self._event(window.start_chunk, probs[0]))
            self.windows_ = [w for w in self.windows_ if k - w.start_chunk + 1 < per_window]
            self.n_chunks_ += 1
        return events

    def _event(self, start_chunk: int, probs: np.ndarray) -> dict:
        d = self.spec.decimate
        first = start_chunk * self.chunk_len  # model-rate index since the restart
        start = int(self.to_input_sample(first * d))
        end = int(self.to_input_sample((first + self.n_steps) * d))
        model_input = self.pre_ring_[(first + np.arange(self.n_steps)) % len(self.pre_ring_)]
        raw_idx = np.arange(first * d, (first + self.n_steps) * d)
        raw = self.raw_ring_[raw_idx[raw_idx >= self.n_raw_ - len(self.raw_ring_)] % len(self.raw_ring_)]
        flags = self._flags_over(start, end)
        flags += sqi.eeg_window_quality(raw, self.spec.fs_in_hz, self.mains_hz, model_input, self.amplitude_limit)
        event = {"type": "window", "start_sample": start, "end_sample": end, "time_s": end / self.fs_src}
        return self._decision(event, probs, flags)


def open_session(folder: str | Path, artifact: str | None = None, **kw) -> StreamSession:
    """The session for an artifact folder's kind, the manifest read and hashed once.

    ``artifact`` defaults to ``tflite_float32`` (ECG) or ``stream_tflite_float32`` (EEG);
    keyword arguments as :class:`StreamSession`.
    """
    manifest = kw.pop("manifest", None) or read_manifest(folder, trusted_key=kw.pop("trusted_key", None))
    kw.pop("trusted_key", None)
    cls = ECGSession if manifest.kind == "ecg-beats" else EEGSession
    default = "tflite_float32" if manifest.kind == "ecg-beats" else "stream_tflite_float32"
    return cls(folder, artifact or default, manifest=manifest, **kw)
