"""Streaming QRS detection after Pan & Tompkins (1985), written for chunks.

Pan J, Tompkins WJ. A real-time QRS detection algorithm. IEEE Trans Biomed Eng
32(3):230-236 (1985): band-pass 5-15 Hz, five-point derivative, squaring, 150 ms moving
window integration, then adaptive signal/noise peak thresholds with a 200 ms refractory
period, T-wave discrimination below 360 ms and search-back after 1.66 average RR.

Every stage keeps its state between chunks (filter state, the last samples of the
derivative and integrator, the peak candidate awaiting its lookahead), so any split of a
signal into chunks gives the same beats. The per-sample work is vectorised per chunk; only
the threshold logic runs per candidate peak (a few per heartbeat).

Latency: a beat is reported once the integrated signal has fallen for ``lookahead_s``
after its peak: about 0.25 s after the R peak.

Two guards the 1985 algorithm lacks, so that one artefact cannot blind it for the rest of
a recording (a single 100 mV sample used to raise the signal threshold above every later
QRS, for good):

- a peak updates the signal or noise level with at most ``CAP`` times the current signal
  level, so an artefact a thousand times a QRS moves the threshold as a QRS would;
- after ``relearn_s`` without a QRS, both levels are learnt again from the last
  ``learn_s`` of integrated signal, as at the start.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pipeline.preprocess.filters import CausalFilter, MovingSum
from pipeline.preprocess.iir import butter_bandpass_order1


class PanTompkins:
    """Streaming QRS detector on one ECG channel.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the signal pushed in.
    learn_s : float
        Initial learning period: thresholds start from its integrated signal.

    Attributes (state)
    ------------------
    n_seen_ : int, samples pushed so far; the sample index of the next sample.
    """

    #: A peak moves the signal/noise levels by at most this many times the signal level.
    CAP = 4.0

    def __init__(
        self,
        fs_hz: float,
        learn_s: float = 2.0,
        lookahead_s: float = 0.1,
        refractory_s: float = 0.2,
        t_wave_s: float = 0.36,
        search_r_s: float = 0.25,
        relearn_s: float = 2.5,
    ):
        self.fs_hz = float(fs_hz)
        self.sos = butter_bandpass_order1(fs_hz, 5.0, 15.0)
        self.window = max(1, int(round(0.150 * fs_hz)))
        self.learn = int(round(learn_s * fs_hz))
        self.lookahead = max(1, int(round(lookahead_s * fs_hz)))
        self.refractory = int(round(refractory_s * fs_hz))
        self.t_wave = int(round(t_wave_s * fs_hz))
        self.search_r = int(round(search_r_s * fs_hz))
        self.relearn = int(round(relearn_s * fs_hz))
        # Enough history to look back for the R peak, the QRS slope, and to learn again.
        self.history = max(self.search_r, self.window, self.learn) + self.lookahead + 4
        self.reset()

    def reset(self) -> None:
        self.filter = CausalFilter(self.sos, 1)
        self.n_seen_ = 0
        self.deriv_tail_ = np.zeros(4)  # last band-passed samples (derivative)
        self.integrator = MovingSum(self.window)  # moving-window integration
        self.mwi_tail_ = np.zeros(0)  # integrated samples not yet judged
        self.mwi_tail_start_ = 0  # sample index of mwi_tail_[0]
        self.sig_tail_ = np.zeros(0)  # recent input samples (R search)
        self.slope_tail_ = np.zeros(0)  # recent |derivative| (T-wave test)
        self.mwi_hist_ = np.zeros(0)  # recent integrated signal (relearning)
        self.learnt_at_ = None  # index where the levels were last learnt
        self.tail_start_ = 0
        self.spki_ = self.npki_ = None
        self.last_qrs_ = None  # sample index of the last QRS (MWI peak)
        self.last_r_ = None  # sample index of the last R peak reported
        self.last_slope_ = 0.0
        self.rr_ = deque(maxlen=8)
        self.noise_since_qrs_ = []  # (index, value, slope) for search-back

    def _threshold(self) -> float:
        return self.npki_ + 0.25 * (self.spki_ - self.npki_)

    def push(self, chunk: np.ndarray) -> list[int]:
        """Push samples of shape (n,); return the sample indices of R peaks found."""
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if len(x) == 0:
            return []
        band = self.filter.process(x[:, None])[:, 0]
        ext = np.concatenate([self.deriv_tail_, band])
        # Five-point derivative: (2x[n] + x[n-1] - x[n-3] - 2x[n-4]) / 8.
        deriv = (2 * ext[4:] + ext[3:-1] - ext[1:-3] - 2 * ext[:-4]) / 8.0
        self.deriv_tail_ = ext[-4:]
        mwi = self.integrator.process(deriv * deriv) / self.window
        self.n_seen_ += len(x)

        # Recent raw samples, slopes and integrated signal, for the R search, the T-wave
        # test and relearning.
        self.sig_tail_ = np.concatenate([self.sig_tail_, x])
        self.slope_tail_ = np.concatenate([self.slope_tail_, np.abs(deriv)])
        self.mwi_hist_ = np.concatenate([self.mwi_hist_, mwi])

        self.mwi_tail_ = np.concatenate([self.mwi_tail_, mwi])
        if self.spki_ is None:
            # Learning period: thresholds start from the first learn_s of integrated signal
            # (mwi_tail_ still starts at sample 0 until the first scan).
            if self.n_seen_ < self.learn:
                return []
            first = self.mwi_tail_[: self.learn]
            self.spki_ = float(first.max()) / 3
            self.npki_ = float(first.mean()) / 2
            self.learnt_at_ = self.learn
        beats = self._scan()
        # Forget what no peak still to be judged (nor a search-back candidate) can reach.
        oldest = min([self.mwi_tail_start_] + [p[0] for p in self.noise_since_qrs_]) - self.history
        drop = max(0, oldest - self.tail_start_)
        if drop:
            self.sig_tail_ = self.sig_tail_[drop:]
            self.slope_tail_ = self.slope_tail_[drop:]
            self.mwi_hist_ = self.mwi_hist_[drop:]
            self.tail_start_ += drop
        return beats

    def _scan(self) -> list[int]:
        """Judge every peak of the integrated signal whose lookahead has passed."""
        m = self.mwi_tail_
        base = self.mwi_tail_start_
        beats: list[int] = []
        judged_upto = len(m) - self.lookahead  # peaks before this index can be judged
        if judged_upto < 2:
            return beats
        k = np.arange(1, judged_upto)
        is_peak = (m[k] >= m[k - 1]) & (m[k] > m[k + 1])
        for i in k[is_peak]:
            # A peak must be the maximum of its lookahead span (ripples are not peaks).
            if m[i] >= m[i + 1 : i + 1 + self.lookahead].max():
                beats += self._judge(base + int(i), float(m[i]))
        keep_from = judged_upto - 1  # one sample of context for the next scan
        self.mwi_tail_ = m[keep_from:]
        self.mwi_tail_start_ = base + keep_from
        return beats

    def _slope(self, index: int) -> float:
        lo = max(index - self.window - self.tail_start_, 0)
        hi = max(index + 1 - self.tail_start_, lo + 1)
        seg = self.slope_tail_[lo:hi]
        return float(seg.max()) if len(seg) else 0.0

    def _r_peak(self, index: int) -> int:
        """The R peak: the largest |sample| of the input in the search span before the MWI peak."""
        lo = max(index - self.search_r - self.tail_start_, 0)
        hi = max(index + 1 - self.tail_start_, lo + 1)
        seg = self.sig_tail_[lo:hi]
        seg = seg - np.median(seg)
        return self.tail_start_ + lo + int(np.argmax(np.abs(seg)))

    def _accept(self, index: int, value: float, slope: float, weight: float) -> list[int]:
        """Take an integrated-signal peak as a QRS; return its R peak, or nothing if that R
        lies within the refractory period of the last one reported (two integrated peaks
        of one wide, noisy complex can search back to the same R: record 105)."""
        if self.last_qrs_ is not None:
            self.rr_.append(index - self.last_qrs_)
        self.spki_ = weight * min(value, self.CAP * self.spki_) + (1 - weight) * self.spki_
        self.last_qrs_ = index
        self.last_slope_ = slope
        self.noise_since_qrs_ = []
        r = self._r_peak(index)
        if self.last_r_ is not None and r - self.last_r_ < self.refractory:
            return []
        self.last_r_ = r
        return [r]

    def _relearn_if_lost(self, index: int) -> None:
        """No QRS for ``relearn_s`` (since the last one, or the last learning): learn both
        levels again from the integrated signal of the last ``learn_s``."""
        since = max(self.last_qrs_ if self.last_qrs_ is not None else 0, self.learnt_at_ or 0)
        if index - since <= self.relearn:
            return
        lo = max(index - self.learn - self.tail_start_, 0)
        recent = self.mwi_hist_[lo : index - self.tail_start_ + 1]
        self.learnt_at_ = index
        if not len(recent):
            return
        # Only when QRS-like peaks went on beneath a threshold they could not reach (peaks
        # far above the signal's median, and far below the signal level): a pause or
        # asystole is flat, and must not teach the detector to take noise for beats.
        peak, median = float(recent.max()), float(np.median(recent))
        if peak > 8 * median and peak / 3 < 0.5 * self.spki_:
            self.spki_ = peak / 3
            self.npki_ = float(recent.mean()) / 2
            self.noise_since_qrs_ = []
            self.rr_.clear()  # the old rhythm says nothing now

    def _judge(self, index: int, value: float) -> list[int]:
        """Classify one integrated-signal peak as QRS or noise; return R peaks found."""
        self._relearn_if_lost(index)
        beats = []
        # Search-back: a beat missed since the last QRS, at half the threshold.
        if self.last_qrs_ is not None and len(self.rr_) >= 2:
            rr_avg = sum(self.rr_) / len(self.rr_)
            if index - self.last_qrs_ > 1.66 * rr_avg and self.noise_since_qrs_:
                j, v, slope = max(self.noise_since_qrs_, key=lambda p: p[1])
                if v > 0.5 * self._threshold() and j - self.last_qrs_ >= self.refractory:
                    beats += self._accept(j, v, slope, 0.25)
        if self.last_qrs_ is not None and index - self.last_qrs_ < self.refractory:
            return beats
        slope = self._slope(index)
        if value > self._threshold():
            t_wave = (
                self.last_qrs_ is not None and index - self.last_qrs_ < self.t_wave and slope < 0.5 * self.last_slope_
            )
            if not t_wave:
                beats += self._accept(index, value, slope, 0.125)
                return beats
        self.npki_ = 0.125 * min(value, self.CAP * self.spki_) + 0.875 * self.npki_
        self.noise_since_qrs_.append((index, value, slope))
        return beats
