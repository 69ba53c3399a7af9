"""Streaming sessions: ``push(samples) -> events`` on a device.

An ECG session keeps every piece of state a recording needs, in named attributes: the
causal preprocessing filter, the QRS detector, the RR-interval tracker, the patient's
running beat template, and a ring buffer of preprocessed samples. Each detected beat is
classified as soon as its window has closed and the next beat (its post-RR) is known.

Events are dicts, JSON-ready:

``{"type": "beat", "sample": int, "time_s": float, "class": str, "probs": [...],
  "inputs_ready_at_sample": int}``   sample indices at the recording's own rate;
``{"type": "signal_quality", "kind": "nonfinite" | "flat", "sample": int, "time_s": float,
  "action": "state reset"}`` where NaN/inf begins or a flat line (lead-off) has lasted
  ``flat_s``, and ``{"type": "signal_quality",
  "kind": "recovered", "sample": int, "time_s": float, "gap_samples": int}`` where good
  samples return (everything restarts from there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import load_manifest, verify_artifact
from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.runtime.qrs import PanTompkins
from pipeline.window.ecg import normalise_windows
from pipeline.window.rr import RR_FEATURE_NAMES, RRFeatures
from pipeline.window.side import Standardiser
from pipeline.window.template import BeatTemplate


class SessionError(BiosigError):
    """Input a session cannot take (wrong dtype or channel count)."""


def open_model(folder: str | Path, manifest: dict, artifact: str, num_threads: int = 1):
    """A runner for one artifact of the folder, hash-checked: ``predict`` for whole-window
    graphs, ``step`` for streaming graphs (the numpy reference and the generated C,
    ``c_float32`` / ``c_int8``, have both)."""
    from pipeline.runtime import backends
    from pipeline.runtime.c_backend import C_ARTIFACTS, open_library
    from pipeline.runtime.reference import NumpyLSTM

    entry = next((a for a in manifest["artifacts"] if a["name"] == artifact), None)
    if entry is None or entry["status"] != "ok":
        known = [a["name"] for a in manifest["artifacts"] if a["status"] == "ok" and a.get("graph") != "data"
                 and (a["format"] not in ("c", "shared-library") or a["name"] in C_ARTIFACTS)]
        raise SessionError(f"{folder}: no usable artifact '{artifact}' (choose from {known})")
    if entry["format"] == "c" and artifact in C_ARTIFACTS:          # the generated C, as a shared library
        return open_library(folder, manifest, artifact)
    data = verify_artifact(Path(folder), entry)
    stream = entry.get("graph") == "stream"
    if entry["format"] == "tflite":
        return (backends.LiteRTStream if stream else backends.LiteRTModel)(data, num_threads)
    if entry["format"] == "onnx":
        return (backends.OnnxStream if stream else backends.OnnxModel)(data, num_threads)
    if entry["format"] == "npz":
        import io

        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return NumpyLSTM({k: arrays[k] for k in arrays.files})
    raise SessionError(f"{folder}: artifact '{artifact}' ({entry['format']}) cannot classify windows")


class StreamSession:
    """What every streaming session shares: the checked manifest and model, the
    preprocessing spec, input checks, NaN/inf and flat-line handling (an event, then a
    restart of all state when good samples return), and sample counting. Subclasses
    implement ``_restart(at_sample)`` and ``_process(chunk) -> events``."""

    #: ``kind`` in the manifest this session can run.
    KIND = ""

    def __init__(self, folder: str | Path, artifact: str, num_threads: int = 1, flat_s: float = 1.0):
        self.folder = Path(folder)
        self.manifest = load_manifest(self.folder)
        if self.manifest["kind"] != self.KIND:
            raise SessionError(f"{folder}: a '{self.manifest['kind']}' model, not {self.KIND_TEXT}")
        self.model = open_model(folder, self.manifest, artifact, num_threads)
        self.spec = PreprocessSpec.from_dict(self.manifest["preprocess"])
        self.sos = np.asarray(self.manifest["preprocess"]["sos"])
        self.n_channels = len(self.manifest["channels"])
        self.flat_len = int(round(flat_s * self.spec.fs_in_hz))

    def reset(self) -> None:
        """Forget the recording: filter, detector, RR tracker, template and buffers."""
        self.n_in_ = 0                     # input samples pushed since the session began
        self.gap_start_ = None             # input sample where a NaN/inf or flat stretch began
        self.run_ = np.zeros(self.n_channels, dtype=np.int64)   # equal-sample pairs so far, per channel
        self.last_sample_ = None
        self._restart(0)

    def push(self, samples: np.ndarray) -> list[dict]:
        """Push samples of shape (n, n_channels) at the manifest's fs; return events.

        A stretch of NaN/inf is reported as a ``signal_quality`` event and the state is
        reset after it: the filter would otherwise carry NaN for ever.
        """
        x = np.asarray(samples)
        if x.dtype.kind not in "fiu":
            raise SessionError(f"samples must be numbers, got dtype {x.dtype}")
        if x.ndim == 1 and self.n_channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise SessionError(f"samples must have shape (n, {self.n_channels}) for channels "
                               f"{self.manifest['channels']}, got {x.shape}")
        x = x.astype(np.float64)
        events = []
        finite = np.isfinite(x).all(axis=1)
        flat = self._flat_mask(x)
        good = finite & ~flat
        # Runs of good and bad samples; a bad run may continue from the previous chunk.
        edges = np.flatnonzero(np.diff(good.astype(np.int8))) + 1
        for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(x)]])):
            at = self.n_in_ + int(a)
            if good[a]:
                if self.gap_start_ is not None:
                    events.append({"type": "signal_quality", "kind": "recovered", "sample": at,
                                   "time_s": at / self.spec.fs_in_hz, "gap_samples": at - self.gap_start_})
                    self._restart(at)
                    self.gap_start_ = None
                events += self._process(x[a:b])
            elif self.gap_start_ is None:
                self.gap_start_ = at
                kind = "nonfinite" if not finite[a] else "flat"
                events.append({"type": "signal_quality", "kind": kind, "sample": at,
                               "time_s": at / self.spec.fs_in_hz, "action": "state reset"})
        self.n_in_ += len(x)
        return events

    def _flat_mask(self, x: np.ndarray) -> np.ndarray:
        """True where some channel has held one value for at least ``flat_s`` (lead-off).

        Causal: a flat line is known once it has lasted flat_s; run lengths carry over
        between chunks, so the mask does not depend on how the signal was chunked.
        """
        n = len(x)
        prev = np.concatenate([self.last_sample_[None], x[:-1]]) if self.last_sample_ is not None else \
            np.concatenate([np.full((1, x.shape[1]), np.nan), x[:-1]])
        same = x == prev                                   # (n, channels); NaN never equal
        idx = np.arange(n)[:, None]
        breaks = np.where(~same, idx, -1)
        last_break = np.maximum.accumulate(breaks, axis=0)
        run = np.where(last_break >= 0, idx - last_break, self.run_[None, :] + idx + 1)
        self.run_ = run[-1].copy()
        self.last_sample_ = x[-1].copy()
        return (run >= self.flat_len - 1).any(axis=1)


class ECGSession(StreamSession):
    """Beat-by-beat classification of a streamed ECG.

    Parameters
    ----------
    folder : artifact folder from ``biosig-edge export`` (manifest and hashes checked)
    artifact : which model to run (``tflite_float32``, ``onnx_float32``, ``reference_float32``, ...)
    """

    KIND, KIND_TEXT = "ecg-beats", "an ECG beat classifier"

    def __init__(self, folder: str | Path, artifact: str = "tflite_float32", num_threads: int = 1,
                 flat_s: float = 1.0):
        super().__init__(folder, artifact, num_threads, flat_s)
        m = self.manifest
        fs = self.spec.fs_out_hz
        self.n_before = int(round(m["window"]["before_s"] * fs))
        self.n_after = int(round(m["window"]["after_s"] * fs))
        side = m["side_features"]
        self.side_cols = [RR_FEATURE_NAMES.index(n) for n in side["names"]]
        self.standardise = Standardiser.from_manifest(side)
        self.normalise = m["window"]["normalise"]
        self.buffer_len = int(10 * fs)       # 10 s of model-rate samples: windows + search-back
        self.reset()

    def _restart(self, at_sample: int) -> None:
        """Fresh state from input sample ``at_sample`` on (after a gap or at the start)."""
        self.pre = Preprocessor(self.spec, self.n_channels, sos=self.sos)
        self.qrs = PanTompkins(self.spec.fs_out_hz)
        self.rr = RRFeatures()
        self.template = BeatTemplate()
        self.ring = np.zeros((self.buffer_len, self.n_channels), np.float32)
        self.segment_start_ = at_sample    # input sample of model-rate sample 0
        self.n_out_ = 0                    # model-rate samples since the restart
        self.pending_ = []                 # [r, features or None]: windows still to close

    def _process(self, x: np.ndarray) -> list[dict]:
        if len(x) == 0:
            return []
        y = self.pre.process(x)                          # model-rate samples
        events = []
        # In pieces of at most one second, so that a window is copied out of the ring
        # before new samples overwrite it, however large the pushed chunk.
        step = int(self.spec.fs_out_hz)
        for start in range(0, len(y), step):
            piece = y[start:start + step]
            self.ring[(self.n_out_ + np.arange(len(piece))) % self.buffer_len] = piece
            self.n_out_ += len(piece)
            for r in self.qrs.push(piece[:, 0]):
                features = self.rr.push(r / self.spec.fs_out_hz)
                if self.pending_ and features is not None:
                    self.pending_[-1][1] = features      # the previous beat's post-RR is known
                    self.pending_[-1][3] = r
                self.pending_.append([r, None, None, None])
            events += self._decide_ready()
        return events

    def _decide_ready(self) -> list[dict]:
        """Copy out windows that have closed; classify beats whose RR features are known.

        Pending entries are [r, features, window, next r] at the model rate.
        """
        for entry in self.pending_:
            r = entry[0]
            if entry[2] is None and r + self.n_after <= self.n_out_:
                if r - self.n_before < 0 or self.n_out_ - (r - self.n_before) > self.buffer_len:
                    entry[2] = False                     # off the segment's start / overwritten
                else:
                    entry[2] = self.ring[np.arange(r - self.n_before, r + self.n_after) % self.buffer_len]
        events = []
        while self.pending_:
            r, features, window, r_next = self.pending_[0]
            if window is None or (features is None and len(self.pending_) == 1):
                break                                    # window open, or waiting for the next beat
            self.pending_.pop(0)
            if window is False:
                continue
            if self.normalise == "template":
                window = self.template.push(window)     # every clean beat feeds the template
            if features is None:
                continue                                 # the first beat: no pre-RR
            events.append(self._classify(r, window, features, r_next))
        return events

    def _classify(self, r: int, window: np.ndarray, features: np.ndarray, r_next: int) -> dict:
        if self.normalise == "zscore":
            window = normalise_windows(window[None], "zscore")[0]
        side = self.standardise(features[None, self.side_cols])[0]
        probs = self.model.predict({"signal": window[None], "side": side[None]})[0]
        sample = self.segment_start_ + r * self.spec.decimate
        # When the inputs existed: the window closed and the next beat (post-RR) occurred.
        # The detector confirms a beat ~0.1 s after its integrated peak, on top of this.
        ready = self.segment_start_ + max(r + self.n_after, r_next) * self.spec.decimate
        return {"type": "beat", "sample": int(sample), "time_s": sample / self.spec.fs_in_hz,
                "class": self.manifest["classes"][int(np.argmax(probs))],
                "probs": [float(p) for p in probs], "inputs_ready_at_sample": int(ready)}


class EEGSession(StreamSession):
    """Overlapping-window EEG classification, carried chunk by chunk.

    Every window (``window_s`` long, one starting every ``hop_s``) has its own LSTM state;
    each completed chunk of ``chunk_len`` model-rate samples advances every window that
    contains it, so each sample goes through the model once per window, never a whole
    window again at every hop. A window's decision is made as its last chunk completes.

    Events: ``{"type": "window", "start_sample", "end_sample", "time_s", "class", "probs"}``
    (input-rate samples; ``time_s`` of the window's end) and the same ``signal_quality``
    events as :class:`ECGSession`.
    """

    KIND, KIND_TEXT = "eeg-windows", "an EEG window classifier"

    def __init__(self, folder: str | Path, artifact: str = "stream_tflite_float32", num_threads: int = 1,
                 flat_s: float = 1.0):
        super().__init__(folder, artifact, num_threads, flat_s)
        if not hasattr(self.model, "step"):
            raise SessionError(f"{folder}: '{artifact}' is a whole-window graph; choose a stream_* artifact")
        m = self.manifest
        st = m["streaming"]
        self.chunk_len = st["chunk_len"]
        self.units = st["state_sizes"]
        self.n_steps = m["window"]["n_steps"]
        self.hop_len = int(round(m["window"]["hop_s"] * self.spec.fs_out_hz))
        if self.hop_len % self.chunk_len or self.n_steps % self.chunk_len:
            raise SessionError(f"{folder}: hop ({self.hop_len}) and window ({self.n_steps}) must be whole "
                               f"numbers of chunks ({self.chunk_len})")
        self.reset()


    def _restart(self, at_sample: int) -> None:
        self.pre = Preprocessor(self.spec, self.n_channels, sos=self.sos)
        self.segment_start_ = at_sample
        self.n_chunks_ = 0                                  # chunks completed since the restart
        self.partial_ = np.zeros((0, self.n_channels), np.float32)
        self.windows_ = []                                  # [start chunk, states]

    def _process(self, x: np.ndarray) -> list[dict]:
        if len(x) == 0:
            return []
        y = np.concatenate([self.partial_, self.pre.process(x)])
        n_full = len(y) // self.chunk_len
        self.partial_ = y[n_full * self.chunk_len:]
        events = []
        per_window = self.n_steps // self.chunk_len
        hop_chunks = self.hop_len // self.chunk_len
        for j in range(n_full):
            k = self.n_chunks_                              # index of this chunk
            if k % hop_chunks == 0:
                self.windows_.append([k, [np.zeros((1, u), np.float32) for u in self.units for _ in (0, 1)]])
            chunk = y[j * self.chunk_len:(j + 1) * self.chunk_len][None].astype(np.float32)
            for window in self.windows_:
                feed = {"chunk": chunk}
                for i in range(len(self.units)):
                    feed[f"h_{i}"], feed[f"c_{i}"] = window[1][2 * i], window[1][2 * i + 1]
                probs, window[1] = self.model.step(feed)
                if k - window[0] + 1 == per_window:
                    events.append(self._event(window[0], probs[0]))
            self.windows_ = [w for w in self.windows_ if k - w[0] + 1 < per_window]
            self.n_chunks_ += 1
        return events

    def _event(self, start_chunk: int, probs: np.ndarray) -> dict:
        d = self.spec.decimate
        start = self.segment_start_ + start_chunk * self.chunk_len * d
        end = start + self.n_steps * d
        return {"type": "window", "start_sample": int(start), "end_sample": int(end),
                "time_s": end / self.spec.fs_in_hz,
                "class": self.manifest["classes"][int(np.argmax(probs))],
                "probs": [float(p) for p in probs]}
