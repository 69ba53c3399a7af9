"""The whole preprocessing chain: filter -> decimate -> scale [-> running normalisation],
described by a spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pipeline.errors import SamplingRateError
from pipeline.preprocess.filters import BandPower, CausalFilter, Decimator, RunningNormaliser, band_sos, design_sos


@dataclass(frozen=True)
class PreprocessSpec:
    """What the model expects its input to have been through.

    Attributes
    ----------
    fs_in_hz : float
        Sampling rate of the recording the chain was made for.
    decimate : int
        Keep every ``decimate``-th filtered sample; the model runs at ``fs_in_hz / decimate``.
    highpass_hz, lowpass_hz, notch_hz : float or None
        Filter design; ``lowpass_hz`` must lie below the decimated Nyquist rate.
    order : int
        Butterworth order per band edge.
    gain : float
        Multiplier (for example 1/100 to bring uV EEG near unit scale).
    running_norm_s : float or None
        If set, last of all each channel is divided by its running RMS with this time
        constant in seconds (:class:`~pipeline.preprocess.filters.RunningNormaliser`):
        the model's input no longer depends on the amplifier's scale.
    bands_hz : list of [low_hz, high_hz] or None
        If set, the model's input is (after the normalised signal, when ``running_norm_s``
        is set too) the relative log power of each band of each channel
        (:class:`~pipeline.preprocess.filters.BandPower`), averaged over ``band_power_s``.
    band_power_s : float
        Time constant of the band powers, in seconds.
    """

    fs_in_hz: float
    decimate: int = 1
    highpass_hz: float | None = None
    lowpass_hz: float | None = None
    notch_hz: float | None = None
    order: int = 2
    gain: float = 1.0
    running_norm_s: float | None = None
    bands_hz: list[list[float]] | None = None
    band_power_s: float = 0.5

    def __post_init__(self):
        if self.bands_hz is not None:
            if not self.bands_hz or not self.band_power_s > 0:
                raise ValueError(
                    f"bands_hz needs at least one band and band_power_s > 0 (got {self.bands_hz}, {self.band_power_s})"
                )
            for band in self.bands_hz:
                if len(band) != 2:
                    raise ValueError(f"bands_hz: each band is [low_hz, high_hz], not {band}")
                band_sos(self.fs_out_hz, *band)
        if self.running_norm_s is not None and not self.running_norm_s > 0:
            raise ValueError(f"running_norm_s must be > 0 seconds (or absent), not {self.running_norm_s}")
        if self.decimate > 1:
            nyquist_out = self.fs_out_hz / 2
            if self.lowpass_hz is None or self.lowpass_hz >= nyquist_out:
                raise ValueError(
                    f"decimating {self.fs_in_hz} Hz by {self.decimate} needs a low-pass below "
                    f"{nyquist_out} Hz (got {self.lowpass_hz}) or it aliases"
                )

    @property
    def fs_out_hz(self) -> float:
        return self.fs_in_hz / self.decimate

    def n_out_channels(self, n_channels: int) -> int:
        """Channels the model sees for ``n_channels`` input channels."""
        if self.bands_hz is None:
            return n_channels
        return n_channels * len(self.bands_hz) + (n_channels if self.running_norm_s is not None else 0)

    def sos(self) -> np.ndarray:
        """The filter as SOS of shape (n_sections, 6), designed at ``fs_in_hz``."""
        return design_sos(self.fs_in_hz, self.highpass_hz, self.lowpass_hz, self.notch_hz, self.order)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        """From :meth:`to_dict` output (a manifest's ``preprocess``); extra keys ignored."""
        return cls(
            d["fs_in_hz"],
            d["decimate"],
            d["highpass_hz"],
            d["lowpass_hz"],
            d["notch_hz"],
            d["order"],
            d["gain"],
            d.get("running_norm_s"),
            d.get("bands_hz"),
            d.get("band_power_s", 0.5),
        )

    def to_dict(self) -> dict:
        """JSON-ready description, with the SOS coefficients a device needs."""
        d = {**asdict(self), "fs_out_hz": self.fs_out_hz, "sos": self.sos().tolist()}
        if self.bands_hz is not None:  # designed in numpy: the device computes the same
            d["band_sos"] = [band_sos(self.fs_out_hz, *b).tolist() for b in self.bands_hz]
        return d


class Preprocessor:
    """Streaming preprocessing chain; ``process`` may be called with chunks of any size.

    Parameters
    ----------
    spec : PreprocessSpec
    n_channels : int
    sos : ndarray of shape (n_sections, 6), optional
        Coefficients to use instead of designing them from ``spec`` (the device side
        takes them from the manifest, so it runs exactly what training ran).
    """

    def __init__(self, spec: PreprocessSpec, n_channels: int, sos: np.ndarray | None = None):
        self.spec = spec
        self.n_channels = n_channels
        self.filter = CausalFilter(spec.sos() if sos is None else sos, n_channels)
        self.decimator = Decimator(spec.decimate)
        self.normaliser = (
            None if spec.running_norm_s is None else RunningNormaliser(spec.running_norm_s, spec.fs_out_hz, n_channels)
        )
        self.bands = (
            None if spec.bands_hz is None else BandPower(spec.bands_hz, spec.band_power_s, spec.fs_out_hz, n_channels)
        )
        self.n_out_channels = spec.n_out_channels(n_channels)

    def reset(self) -> None:
        self.filter.reset()
        self.decimator.reset()
        if self.normaliser is not None:
            self.normaliser.reset()
        if self.bands is not None:
            self.bands.reset()

    def _scale(self, y: np.ndarray) -> np.ndarray:
        """Gain, then the running normalisation and band powers if the spec has them; float32."""
        y = y * self.spec.gain
        if self.bands is not None:
            powers = self.bands.process(y)
            if self.normaliser is None:
                return powers.astype(np.float32)
            return np.concatenate([self.normaliser.process(y), powers], axis=1).astype(np.float32)
        if self.normaliser is not None:
            y = self.normaliser.process(y)
        return y.astype(np.float32)

    def check_fs(self, fs_hz: float, source: object = "input") -> None:
        """Refuse a recording at a rate the chain was not made for (never misuse it)."""
        if abs(fs_hz - self.spec.fs_in_hz) > 1e-6 * self.spec.fs_in_hz:
            raise SamplingRateError(
                f"{source}: sampled at {fs_hz:g} Hz, but this processing chain was made for "
                f"{self.spec.fs_in_hz:g} Hz; resample the recording to {self.spec.fs_in_hz:g} Hz "
                f"first (filter coefficients and window lengths depend on the rate)"
            )

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) at fs_in_hz -> (n_out, n_channels) float32 at fs_out_hz."""
        return self._scale(self.decimator.process(self.filter.process(chunk)))

    def run(self, signal: np.ndarray, fs_hz: float, source: object = "input") -> np.ndarray:
        """Offline use: check the rate and process a whole recording.

        Non-finite samples would poison the IIR state for the rest of the recording, so
        the filter restarts after each non-finite stretch (as the streaming runtime does
        after a gap) and the output is NaN wherever the input was not finite.

        Returns
        -------
        ndarray of shape (ceil(n_samples / decimate), n_channels), float32
        """
        self.check_fs(fs_hz, source)
        self.reset()
        finite = np.isfinite(signal).all(axis=1)
        if finite.all():
            return self.process(signal)
        f = self.spec.decimate
        out = np.full((-(-len(signal) // f), self.n_out_channels), np.nan, dtype=np.float32)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            self.reset()  # as the device restarts after a gap
            y = self.filter.process(signal[a:b])
            first = -(-a // f) * f  # first kept input index >= a
            kept = y[first - a :: f]
            out[first // f : first // f + len(kept)] = self._scale(kept)
        return out
