"""Running a session on a source until it ends or is stopped: timestamps, stalls, lost
sources, signals, and the latency summary; and replaying a recording as an LSL outlet.

What :func:`run_stream` adds to every event a session emits:

``source_ts``
    the source's timestamp of the event's last input sample (seconds on the source's
    clock: LSL's ``local_clock`` for LSL, Unix time for BrainFlow and serial, the arrival
    time of the chunk for files and stdin). The last input sample is the one that
    completed the decision's inputs: the last one the model's decimated input takes
    before ``inputs_ready_at_sample`` for a beat (the beat's window, its next beat and
    its quality window, about 2.3 s after the R peak), before ``end_sample`` for an EEG
    window (``decimate`` input samples back, or its nominal place at the input's rate
    when the input is resampled), and its ``sample`` for a quality event. Sample
    indices are mapped to timestamps by :class:`SampleClock`, which keeps the last
    minute of per-sample timestamps; the session itself knows nothing of time.
``decided_at``
    this machine's Unix time when the decision was made.
``latency_s``
    the time from that sample to the decision, on the source's clock: the end-to-end
    latency sample -> decision (transport, buffering and computation, not the wait for
    the signal a decision needs). ``stream`` prints its distribution on exit.

Unattended operation:

- SIGTERM and SIGINT stop the loop between pushes (a blocking read of stdin is
  interrupted; nothing already decided is lost), sinks are flushed and closed, a summary
  is printed, and ``stream`` exits 0.
- A live source that delivers nothing for ``stall_s`` gives a ``gap`` event
  (``{"type": "signal_quality", "kind": "gap", "sample", "after_s", "action": "state
  reset"}``) and one NaN row is pushed in its place, so that the session restarts its
  state; when samples return the session's ``recovered`` event carries ``stalled_s``
  (source time between the last sample before and the first after). That NaN row
  counts as one input sample: sample indices after a stall are one more than the
  source's own count per stall.
- A live source that disappears (an LSL outlet closed, a serial port unplugged, a board
  error) ends the run cleanly, or with ``reconnect`` is reopened with exponential
  backoff (0.5 s doubling to 30 s) while a ``gap`` stands for the time it was away.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable

import numpy as np

from pipeline.runtime.sinks import Sink
from pipeline.runtime.sources.base import Source
from pipeline.runtime.sources.live import LiveSource, SourceLost

#: Fields :func:`run_stream` adds to every event (timing; everything else is the session's).
TIME_FIELDS = ("source_ts", "decided_at", "latency_s")

#: Decision event types (the others are quality events).
DECISIONS = ("beat", "window")


class SampleClock:
    """Source timestamps of the most recent input samples, by input-sample index.

    Parameters
    ----------
    keep_samples : how many of the latest samples' timestamps to keep
    """

    def __init__(self, keep_samples: int):
        self.keep = max(1, int(keep_samples))
        self.stamps = np.full(self.keep, np.nan)
        self.n = 0  # samples added so far

    def add(self, stamps: np.ndarray) -> None:
        """Timestamps of the next ``len(stamps)`` samples, shape (k,), seconds (of a long
        chunk only the last ``keep`` are kept)."""
        stamps = np.asarray(stamps, dtype=np.float64)
        older = max(0, len(stamps) - self.keep)
        self.n += older
        index = (self.n + np.arange(len(stamps) - older)) % self.keep
        self.stamps[index] = stamps[older:]
        self.n += len(stamps) - older

    def at(self, sample: int) -> float | None:
        """Timestamp of input sample ``sample``, or None if it is not (or no longer) known."""
        if sample < 0 or sample >= self.n or sample < self.n - self.keep:
            return None
        value = float(self.stamps[sample % self.keep])
        return None if np.isnan(value) else value


def last_input_sample(event: dict, step: int = 1) -> int:
    """Index of the input sample that completed an event (see the module docstring).

    ``step``: input samples per model sample (the preprocessor's ``decimate`` times input
    samples per model-input sample), so that ``end - step`` is the last input sample the
    model took before the decision's end index.
    """
    if event.get("type") == "beat" and event.get("inputs_ready_at_sample") is not None:
        return int(event["inputs_ready_at_sample"]) - step
    if event.get("type") == "window":
        return int(event["end_sample"]) - step
    return int(event.get("sample", 0))


def input_step(session) -> int:
    """Input samples per model sample of a session (see :func:`last_input_sample`)."""
    return max(1, int(round(session.spec.decimate * getattr(session, "src_per_in", 1.0))))


def latency_summary(latencies_s) -> dict:
    """{n, p50, p90, p99, max} of latencies in seconds (None values skipped)."""
    x = np.array([v for v in latencies_s if v is not None], dtype=np.float64)
    if not len(x):
        return {"n": 0}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"n": int(len(x)), "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(x.max())}


class _Stop(Exception):
    """Raised by the signal handler to leave a blocking read."""


class StreamRunner:
    """Push a source's samples through a session into sinks; see :func:`run_stream`."""

    def __init__(
        self,
        source: Source,
        session,
        sinks: Iterable[Sink],
        *,
        chunk_s: float = 1.0,
        realtime: bool = False,
        stall_s: float = 5.0,
        reconnect: bool = False,
        duration_s: float | None = None,
        log=None,
        flush_each_push: bool | None = None,
        backoff_max_s: float = 30.0,
        on_push=None,
    ):
        self.source, self.session, self.sinks = source, session, list(sinks)
        self.fs_hz = float(source.spec.fs_hz)
        self.chunk = max(1, int(round(chunk_s * self.fs_hz)))
        self.realtime, self.stall_s, self.reconnect = realtime, float(stall_s), reconnect
        self.max_samples = None if duration_s is None else int(round(duration_s * self.fs_hz))
        self.log = log or (lambda message: print(f"biosig-edge: {message}", file=sys.stderr, flush=True))
        self.live = isinstance(source, LiveSource)
        self.flush_each_push = (self.live or realtime) if flush_each_push is None else flush_each_push
        self.backoff_max_s = backoff_max_s
        self.on_push = on_push  # called with (seconds of signal pushed, counts)
        self.elapsed_s = 0.0
        self.clock = SampleClock(int(60 * self.fs_hz))
        self.step = input_step(session)
        self.now = source.now if isinstance(source, LiveSource) else time.time
        self.counts: Counter = Counter()
        self.latencies: list[float | None] = []  # None: the input sample's time was not known
        self.n = 0  # rows pushed into the session (signal and stall markers)
        self.n_signal = 0  # signal rows pushed (NaN rows the source sent included)
        self.stop_reason: str | None = None
        self.ended: str | None = None
        self._blocking = False
        self._marker: int | None = None  # sample index of the last stall marker row
        self._stalled_since_ts: float | None = None
        self._last_ts: float | None = None

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum, frame) -> None:
        self.stop_reason = signal.Signals(signum).name
        if self._blocking:
            raise _Stop()

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    # ------------------------------------------------------------------ pushing

    def _emit(self, events: list[dict]) -> None:
        t_source, t_unix = self.now(), time.time()
        for event in events:
            if event.get("kind") == "nonfinite" and event.get("sample") == self._marker:
                continue  # our own stall marker: the gap event said it
            if "source_ts" not in event:
                event["source_ts"] = self.clock.at(min(last_input_sample(event, self.step), self.n - 1))
            ts = event["source_ts"]
            event["decided_at"] = round(t_unix, 6)
            event["latency_s"] = None if ts is None else round(t_source - ts, 6)
            if event.get("kind") == "recovered" and self._stalled_since_ts is not None:
                at = self.clock.at(event["sample"])
                if at is not None:
                    event["stalled_s"] = round(at - self._stalled_since_ts, 3)
                self._stalled_since_ts = None
            if event.get("type") in DECISIONS:
                self.latencies.append(event["latency_s"])
            self.counts[event.get("class") or event.get("kind") or event["type"]] += 1
            for sink in self.sinks:
                sink.write(event)

    def _push_rows(self, x: np.ndarray, stamps: np.ndarray) -> None:
        if not len(x):
            return
        self.clock.add(stamps)
        events = self.session.push(x)
        self.n += len(x)
        self._emit(events)

    def _push(self, x: np.ndarray, stamps: np.ndarray, source_events=()) -> None:
        """Push a chunk, placing the source's own events at their rows."""
        if self.max_samples is not None:
            room = self.max_samples - self.n_signal
            x, stamps = x[:room], stamps[:room]
            source_events = [(row, e) for row, e in source_events if row <= len(x)]
        start = 0
        for row, event in sorted(source_events, key=lambda item: item[0]):
            self._push_rows(x[start:row], stamps[start:row])
            start = row
            ts = float(stamps[row]) if row < len(stamps) else self._last_ts
            self._emit([{**event, "sample": self.n, "time_s": self.n / self.fs_hz, "source_ts": ts}])
        self._push_rows(x[start:], stamps[start:])
        self.n_signal += len(x)
        if len(stamps):
            self._last_ts = float(stamps[-1])
        if self.flush_each_push:
            for sink in self.sinks:
                sink.flush()
        if self.on_push is not None:
            self.on_push(len(x) / self.fs_hz, self.counts)

    def _gap(self, reason: str) -> None:
        """A gap the source did not mark itself (a stall, a lost source): an event, and one
        NaN row so that the session restarts."""
        if self.n == 0 or self._marker == self.n - 1:
            return
        self._stalled_since_ts = self._last_ts
        self._emit(
            [
                {
                    "type": "signal_quality",
                    "kind": "gap",
                    "sample": self.n,
                    "time_s": self.n / self.fs_hz,
                    "reason": reason,
                    "after_s": self.stall_s,
                    "action": "state reset",
                    "source_ts": self._last_ts,
                }
            ]
        )
        self._marker = self.n
        self._push_rows(np.full((1, len(self.source.spec.channels)), np.nan), np.array([self.now()]))
        for sink in self.sinks:
            sink.flush()

    # ------------------------------------------------------------------ loops

    def _run_plain(self) -> None:
        """Files and stdin: chunks as the source yields them, stamped when they arrive."""
        chunks = iter(self.source.chunks(self.chunk))
        t0 = time.perf_counter()
        while self.stop_reason is None:
            self._blocking = True
            try:
                block = next(chunks)
            except StopIteration:
                break
            except _Stop:
                break
            finally:
                self._blocking = False
            if self.realtime:
                self._sleep(t0 + (self.n_signal + len(block)) / self.fs_hz - time.perf_counter())
            block = np.asarray(block)
            self._push(block, np.full(len(block), time.time()))
            if self.max_samples is not None and self.n_signal >= self.max_samples:
                break

    def _run_live(self, source: LiveSource) -> None:
        source.max_samples = self.chunk
        last_data = time.monotonic()
        waited_note = False
        while self.stop_reason is None:
            if self.max_samples is not None and self.n_signal >= self.max_samples:
                break
            try:
                got = source.read(0.1)
            except SourceLost as err:
                if not self.reconnect:
                    self.ended = str(err)
                    self.log(f"{err}; ending (use --reconnect to wait for it)")
                    return
                self._gap("source lost")
                if not self._reopen(source, err):
                    return
                last_data = time.monotonic()
                continue
            if got is None or (not len(got.samples) and not got.events):
                idle = time.monotonic() - last_data
                if idle >= self.stall_s:
                    if self.n:
                        self._gap(f"no samples for {self.stall_s:g} s")
                    elif not waited_note:
                        self.log(f"{source.name}: no samples yet after {self.stall_s:g} s; waiting")
                        waited_note = True
                continue
            last_data = time.monotonic()
            self._push(got.samples, got.timestamps, got.events)

    def _reopen(self, source: LiveSource, err: SourceLost) -> bool:
        from pipeline.runtime.sources.base import SourceError

        delay = 0.5
        self.log(f"{err}; reconnecting")
        while self.stop_reason is None:
            self._sleep(delay)
            if self.stop_reason is not None:
                break
            try:
                source.reopen()
            except SourceLost:
                delay = min(2 * delay, self.backoff_max_s)
                continue
            except SourceError as other:
                self.ended = str(other)
                self.log(f"{other}; ending")
                return False
            self.log(f"{source.name}: reconnected")
            return True
        return False

    def _sleep(self, seconds: float) -> None:
        end = time.perf_counter() + max(0.0, seconds)
        while self.stop_reason is None and time.perf_counter() < end:
            time.sleep(min(0.05, max(0.0, end - time.perf_counter())))

    def run(self) -> dict:
        """Stream until the source ends, is lost (without reconnect), the duration is
        reached or a signal arrives; flush the sinks; return the summary. A source error
        (a bad stdin line) propagates after everything before it was pushed and flushed;
        :meth:`summary` still tells what was streamed."""
        old = self._install_signals()
        t0 = time.perf_counter()
        try:
            if isinstance(self.source, LiveSource):
                self._run_live(self.source)
            else:
                self._run_plain()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            # The input ended, broke off or was stopped: what it allows is still decided.
            self._emit(self.session.flush())
            for sink in self.sinks:
                sink.flush()
            self.elapsed_s = time.perf_counter() - t0
        return self.summary()

    def summary(self) -> dict:
        undecided = len(getattr(self.session, "pending_", None) or getattr(self.session, "windows_", None) or [])
        return {
            "signal_s": self.n_signal / self.fs_hz,
            "elapsed_s": self.elapsed_s,
            "counts": dict(self.counts),
            "latency_s": latency_summary(self.latencies),
            "clock": self.source.clock if isinstance(self.source, LiveSource) else "arrival",
            "stopped_by": self.stop_reason,
            "ended": self.ended,
            "undecided": undecided,
        }


def run_stream(source: Source, session, sinks: Iterable[Sink], **options) -> dict:
    """Stream ``source`` through ``session`` into ``sinks`` (each with ``write``,
    ``flush``, ``close``); see the module docstring. Options as :class:`StreamRunner`.

    Returns the summary: ``signal_s``, ``elapsed_s``, ``counts`` (per class or kind),
    ``latency_s`` ({n, p50, p90, p99, max} over decisions), ``clock``, ``stopped_by``
    (``SIGTERM``/``SIGINT`` or None), ``ended`` (why a live source ended), ``undecided``
    (beats or windows under way when it stopped).
    """
    return StreamRunner(source, session, sinks, **options).run()


def format_summary(summary: dict, artifact: str) -> list[str]:
    """The lines ``stream`` prints on stderr at the end."""
    s = summary
    lines = [
        f"streamed {s['signal_s']:.0f} s of signal in {s['elapsed_s']:.2f} s "
        f"({s['signal_s'] / max(s['elapsed_s'], 1e-9):.0f}x real time) with {artifact}: {s['counts']}"
    ]
    lat = s["latency_s"]
    if lat["n"]:
        lines.append(
            f"latency, last input sample -> decision ({s['clock']} clock, {lat['n']} decisions): "
            f"p50 {lat['p50'] * 1e3:.1f} ms, p90 {lat['p90'] * 1e3:.1f} ms, "
            f"p99 {lat['p99'] * 1e3:.1f} ms, max {lat['max'] * 1e3:.1f} ms"
        )
    if s["stopped_by"]:
        lines.append(
            f"stopped by {s['stopped_by']}: events flushed"
            + (f"; {s['undecided']} beat(s)/window(s) under way were not decided" if s["undecided"] else "")
        )
    return lines


# ---------------------------------------------------------------------- replay


def replay_to_lsl(
    record,
    name: str,
    stream_type: str,
    speed: float = 1.0,
    chunk_s: float = 0.02,
    wait_s: float = 0.0,
    seconds: float | None = None,
    linger_s: float = 2.0,
    log=None,
    stop=None,
) -> dict:
    """Publish a recording as an LSL outlet at its own pace (or ``speed`` times it).

    Parameters
    ----------
    record : a :class:`~pipeline.read.record.Record` (its channels, rate and units are
        published in the stream's description: labels, units, types)
    name, stream_type : the stream's name and type (``ECG``, ``EEG``)
    speed : 1 = real time; 20 = twenty times faster (timestamps are compressed alike)
    chunk_s : seconds of signal per push
    wait_s : wait up to this long for a consumer before the first sample (0: start at once)
    seconds : only the first seconds of the recording
    linger_s : keep the outlet this long after the last sample, so that inlets drain it
    stop : a callable returning True to stop early (signals)

    Sample ``j`` is timestamped ``t0 + j / (fs * speed)`` on the LSL clock and pushed once
    its time has come, as an amplifier stamps samples when it takes them.

    Returns {"samples", "seconds", "elapsed_s"}.
    """
    import pylsl

    log = log or (lambda message: print(f"biosig-edge: {message}", file=sys.stderr, flush=True))
    stop = stop or (lambda: False)
    x = np.asarray(record.signal, dtype=np.float32)
    fs = float(record.fs_hz)
    if seconds is not None:
        x = x[: int(round(seconds * fs))]
    info = pylsl.StreamInfo(name, stream_type, x.shape[1], fs, pylsl.cf_float32, f"biosig-edge-replay:{name}")
    info.set_channel_labels([str(c) for c in record.channel_names])
    info.set_channel_units([str(u) for u in record.units])
    info.set_channel_types(stream_type)
    info.desc().append_child_value("manufacturer", "biosig-edge replay")
    info.desc().append_child_value("record", str(record.record_id))
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    log(
        f"LSL outlet '{name}' ({stream_type}, {x.shape[1]} channel(s) {list(record.channel_names)}, "
        f"{fs:g} Hz, {list(record.units)}): {len(x) / fs:.0f} s of {record.record_id} at {speed:g}x"
    )
    if wait_s > 0 and not outlet.wait_for_consumers(wait_s):
        log(f"no consumer after {wait_s:g} s; publishing anyway")
    step = max(1, int(round(chunk_s * fs)))
    rate = fs * speed
    t0 = pylsl.local_clock()
    start = time.perf_counter()
    i = 0
    while i < len(x) and not stop():
        j = min(len(x), i + step)
        due = t0 + (j - 1) / rate
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        outlet.push_chunk(x[i:j], list(t0 + np.arange(i, j) / rate))
        i = j
    elapsed = time.perf_counter() - start
    end = time.perf_counter() + linger_s
    while time.perf_counter() < end and not stop():
        time.sleep(0.05)
    del outlet
    return {"samples": i, "seconds": i / fs, "elapsed_s": elapsed}
