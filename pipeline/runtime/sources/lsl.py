"""An LSL (Lab Streaming Layer) stream as a source: ``lsl:NAME`` or ``lsl:QUERY``.

``lsl:NAME`` takes the stream named NAME; anything with ``=`` in it is an XPath 1.0
predicate over the stream's info, as liblsl resolves it (``lsl:type='ECG'``,
``lsl:name='OpenBCI' and hostname='pi4'``). The first match is taken; the command line
prints its name, host and source id.

What the stream is comes from its own description (``StreamInfo`` and its XML
``<desc><channels><channel><label/><unit/>``, the XDF convention most amplifiers follow):

- the nominal rate; 0 (irregular: markers, events) is refused, since a signal model needs
  samples at a known rate;
- channel labels (if the stream names none, ``--channels A,B`` names them, else refused);
- units (``microvolts``, ``uV``, ``mV`` ...; if it names none, ``--units``; converter counts
  need ``--gain``); a string stream (markers) is refused.

Timestamps are LSL's, one per sample, corrected into this machine's ``local_clock`` by
liblsl (``proc_clocksync``): a decision's latency is ``local_clock()`` at the decision
minus the timestamp of its last input sample. When the outlet goes away the inlet raises
:class:`SourceLost` (the stream is opened with ``recover=False``: the caller decides to
retry or end, instead of liblsl waiting silently).

Where liblsl looks for streams is its own configuration (``LSLAPICFG`` or ``lsl_api.cfg``);
the tests confine it to 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.read.record import SignalSpec
from pipeline.runtime.sources.base import SourceError
from pipeline.runtime.sources.live import Chunk, LiveSource, SourceLost, declared_units


class LSLSource(LiveSource):
    """Samples of one LSL stream.

    Parameters
    ----------
    query : a stream name, or an XPath predicate (contains ``=``)
    wait_s : how long to wait for the stream to appear
    labels : channel labels to use if the stream names none (``--channels``)
    labels_map : True if ``labels`` are the inputs of a ``MODEL=INPUT`` mapping (the session
        maps them; they only label a stream that names no channels)
    units, gain : units (and converter counts per unit) if the stream names none
    """

    clock = "lsl"

    def __init__(
        self,
        query: str,
        wait_s: float = 10.0,
        labels: list[str] | None = None,
        units: str | None = None,
        gain: float | None = None,
        labels_map: bool = False,
    ):
        import pylsl  # noqa: F401  (fails here, with the extra to install, if missing)

        self.query = query.strip()
        if not self.query:
            raise SourceError("lsl: give a stream name or a query (lsl:NAME, lsl:type='EEG')")
        self.name = f"lsl:{self.query}"
        self.wait_s = float(wait_s)
        self.max_samples = 1024
        self._labels, self._units, self._gain, self._labels_map = labels, units, gain, labels_map
        self.inlet: Any = None  # a pylsl StreamInlet once resolved (the library is imported lazily)
        self._open(self._resolve(self.wait_s))

    def _resolve(self, wait_s: float):
        import pylsl

        try:
            if "=" in self.query:
                found = pylsl.resolve_bypred(self.query, 1, wait_s)
            else:
                found = pylsl.resolve_byprop("name", self.query, 1, wait_s)
        except Exception as err:  # liblsl refusing a malformed predicate
            raise SourceError(f"{self.name}: cannot resolve: {err}") from None
        if not found:
            seen = sorted({f"{s.name()} ({s.type()})" for s in pylsl.resolve_streams(0.5)})
            raise SourceLost(
                f"{self.name}: no LSL stream {'matches' if '=' in self.query else 'has that name'} "
                f"after {wait_s:g} s (streams seen: {', '.join(seen) or 'none'})"
            )
        return found[0]

    def _open(self, found) -> None:
        import pylsl

        inlet = pylsl.StreamInlet(found, max_buflen=60, recover=False, processing_flags=pylsl.proc_clocksync)
        try:
            info = inlet.info(timeout=max(self.wait_s, 2.0))
        except Exception as err:
            raise SourceError(f"{self.name}: the stream did not send its description: {err}") from None
        spec, divide_by = self._spec(info)
        if hasattr(self, "spec") and spec != self.spec:
            raise SourceError(f"{self.name}: came back as another stream ({spec}, was {self.spec}); not resuming")
        self.spec, self.divide_by = spec, divide_by
        self.stream_name, self.hostname, self.source_id = info.name(), info.hostname(), info.source_id()
        self.description = f"{self.name} (stream '{info.name()}' of type '{info.type()}' on {info.hostname()}" + (
            f", source id '{info.source_id()}')" if info.source_id() else ")"
        )
        try:
            # The first clock offset takes liblsl about 0.5 s of probes; done now, the first
            # read does not block on it while samples pile up.
            inlet.time_correction(timeout=max(self.wait_s, 2.0))
        except Exception as err:
            raise SourceError(f"{self.name}: no clock offset from the stream's host: {err}") from None
        # Data flows from the first read on (open_stream there): an outlet waiting for a
        # consumer does not start while the session is still being built.
        self.inlet, self._flowing = inlet, False

    def _spec(self, info) -> tuple[SignalSpec, float]:
        import pylsl

        where = f"{self.name} ('{info.name()}' on {info.hostname()})"
        if info.channel_format() == pylsl.cf_string:
            raise SourceError(f"{where}: a string (marker) stream, not samples of a signal")
        fs_hz = info.nominal_srate()
        if not fs_hz or fs_hz <= 0:
            raise SourceError(
                f"{where}: irregular rate (nominal_srate {fs_hz:g}): a signal model needs samples "
                f"at a declared rate; the stream must state its nominal rate"
            )
        n = info.channel_count()
        labels = info.get_channel_labels()
        if not labels or any(not label for label in labels):
            if not self._labels:
                raise SourceError(
                    f"{where}: the stream's description names no channel labels; name its "
                    f"{n} column(s) with --channels A,B,..."
                )
            labels = list(self._labels)
        elif self._labels and list(self._labels) != list(labels) and not self._labels_map:
            raise SourceError(
                f"{where}: the stream names its channels {labels}; map them with --channels "
                f"MODEL=INPUT instead of relabelling"
            )
        if len(labels) != n:
            raise SourceError(f"{where}: {n} channel(s), but {len(labels)} label(s) given")
        units, divide_by = declared_units(info.get_channel_units(), n, self._units, self._gain, where)
        try:
            return SignalSpec(float(fs_hz), tuple(labels), units), divide_by
        except ValueError as err:
            raise SourceError(f"{where}: {err}") from None

    def now(self) -> float:
        import pylsl

        return pylsl.local_clock()

    def read(self, timeout_s: float) -> Chunk | None:
        import pylsl

        try:
            if not self._flowing:
                self.inlet.open_stream(timeout=max(self.wait_s, 2.0))
                self._flowing = True
            samples, stamps = self.inlet.pull_chunk(
                timeout=timeout_s, max_samples=self.max_samples, as_numpy=True, min_samples=1
            )
        except (pylsl.util.LostError, pylsl.util.TimeoutError):
            raise SourceLost(f"{self.name}: the stream was lost (its outlet closed or its host went away)") from None
        if samples is None or len(stamps) == 0:
            return None
        x = np.asarray(samples, dtype=np.float64).reshape(len(stamps), -1)
        if self.divide_by != 1.0:
            x = x / self.divide_by
        return Chunk(x, np.asarray(stamps, dtype=np.float64))

    def reopen(self) -> None:
        self.close()
        self._open(self._resolve(1.0))

    def close(self) -> None:
        if self.inlet is not None:
            try:
                self.inlet.close_stream()
            except Exception:  # already lost: nothing to close
                pass
            self.inlet = None
