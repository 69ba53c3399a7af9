"""A noise stress test after the MIT-BIH Noise Stress Test Database, on DS2, with the real
electrode-motion noise.

    python -m pipeline.validate.noise_stress ARTIFACT_DIR [--noise real|synthetic|both]
        [--records 100 103 ...] [--snr 24 18 12 6 0 -6] [--seconds 660]
        [--artifact tflite_float32] [--no-xqrs] [--json FILE] [--write]
    python -m pipeline.validate.noise_stress ARTIFACT_DIR --merge RUN1.json RUN2.json [--write]
    python -m pipeline.validate.noise_stress ARTIFACT_DIR --calibrate [--records 101 ...] [--seconds 660]

Protocol and mixing are those of PhysioNet's ``nst`` (Moody GB, Muldrow WE, Mark RG. A
noise stress test for arrhythmia detectors. Computers in Cardiology 11:381-384, 1984;
``nst.c`` and ``sigamp.c`` of the WFDB Software Package):

- **segments**: each record is clean for its first 5 minutes (the detector's learning
  period), then noisy and clean in alternating 2-minute segments; the NSTDB records carry
  six noisy segments (minutes 5-7, 9-11, ..., 25-27), and so does this test;
- **SNR**: 10 log10(S / N) per lead, with S = A^2 / 8 where A is ``sigamp``'s normal-QRS
  amplitude (peak-to-peak over +-50 ms of each of the first 300 beats that WFDB's
  ``map1`` calls normal, the 5 % largest and smallest dropped, the rest averaged) and
  N = R^2 where R is ``sigamp``'s noise RMS (RMS of each second with its mean removed,
  the 5 % largest and smallest dropped, the rest averaged); ``nst`` adds noise times
  ``10^(-SNR/20) A / (sqrt(8) R)`` to each lead;
- **gain per segment**: the gain is switched on at the start of each noisy segment and off
  at its end, and at each switch ``nst`` shifts the output's offset so that it stays
  continuous (no step where noise begins or ends); samples are ADC units, each output
  truncated to an integer as ``nst`` writes them.

The real noise (``--noise real``, the default) is the NSTDB ``em`` recording as ``nst``
added it to record 118 (``../shared/data/nstdb-em``: its README says how it was recovered),
its two channels to the record's two leads: segment k of a record gets the noise of the
NSTDB's segment k, as ``nst`` reads the noise record in step with the ECG. ``nst`` takes R
over the first 300 s of its noise record, which the recovered noise does not hold: R is
taken over all of it (the 12 noisy minutes). The generated noise (``--noise synthetic``)
is kept as another column: baseline wander, bursts of muscle noise and electrode-motion
transients (:func:`make_noise`), mixed the same way.

Reported per SNR, over the noisy segments: the device's QRS Se / +P over all its decisions,
QRS +P over the decisions it marked ``good`` (any other level, ``unassessed`` included, is
not good), V Se / +P over good decisions (Se over the true V beats whose decision is good)
beside the same over the clean record's decisions at the same beats, the share of
decisions flagged (not good) in noisy and in clean segments (after minute 5), and wfdb's
``XQRS`` on the first lead alone, over the same noisy signal and segments. Beats are
matched within 150 ms (:func:`pipeline.metrics.match_pairs`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pipeline.errors import DataUnavailableError

#: The protocol: clean learning period, then 2-minute segments, noisy first; six noisy ones.
LEARN_S, SEGMENT_S, N_NOISY = 300.0, 120.0, 6
DEFAULT_SNRS = (24, 18, 12, 6, 0, -6)
#: Annotation symbols WFDB's ``map1`` maps to NORMAL: the beats ``sigamp`` measures.
NST_NORMAL = frozenset("N L R a J A S j e n B /".split())
#: sigamp's defaults: +-50 ms around the beat, at most 300 measurements, 5 % trimmed.
PTP_HALF_S, N_MAX, TRIM = 0.05, 300, 20
#: ADC units per mV of MIT-BIH and of the recovered noise (both records' gain).
ADC_PER_MV = 200.0
NOISE_FOLDER = "nstdb-em"
MATCH_S = 0.15
KINDS = ("real", "synthetic")
#: DS1 (training) records the quality thresholds are calibrated on (never the DS2 test set):
#: sinus rhythm, bigeminy, atrial fibrillation, frequent V and F beats, a small QRS.
CALIBRATION_RECORDS = ("101", "106", "114", "118", "119", "201", "208", "215")


def trimmed_mean(values: np.ndarray) -> np.ndarray:
    """sigamp's average of measurements (m, C): sorted per column, the m // 20 smallest and
    largest dropped, the rest averaged -> (C,)."""
    v = np.sort(np.asarray(values, dtype=np.float64), axis=0)
    lo = len(v) // TRIM
    return v[lo : len(v) - lo].mean(axis=0)


def qrs_amplitude(signal: np.ndarray, beats: np.ndarray, symbols, fs_hz: float) -> np.ndarray:
    """sigamp -a: the normal-QRS peak-to-peak amplitude A per lead (C,), in the signal's units.

    signal : (n, C); beats : (b,) annotation samples; symbols : (b,) their symbols.
    """
    half = int(round(PTP_HALF_S * fs_hz))
    normal = np.array([s in NST_NORMAL for s in symbols], dtype=bool)
    at = np.asarray(beats)[normal]
    at = at[(at - half >= 0) & (at + half < len(signal))][:N_MAX]
    if not len(at):
        raise ValueError("no normal beats to measure the QRS amplitude on")
    windows = signal[at[:, None] + np.arange(-half, half + 1)[None, :]]  # (b, 2 half + 1, C)
    return trimmed_mean(windows.max(axis=1) - windows.min(axis=1))


def noise_rms(noise: np.ndarray, fs_hz: float) -> np.ndarray:
    """sigamp -r: the noise RMS R per lead (C,): each whole second's RMS with its mean
    removed, trimmed-averaged. noise : (n, C)."""
    n = int(round(fs_hz))
    blocks = noise[: len(noise) // n * n].reshape(-1, n, noise.shape[1]).astype(np.float64)
    return trimmed_mean(np.sqrt(np.mean((blocks - blocks.mean(axis=1, keepdims=True)) ** 2, axis=1)))


def nst_gain(amplitude: np.ndarray, rms: np.ndarray, snr_db: float) -> np.ndarray:
    """nst's noise gain per lead: 10^(-SNR/20) * sqrt(2) / 4 * A / R."""
    return 10 ** (-snr_db / 20) * np.sqrt(2.0) / 4.0 * np.asarray(amplitude) / np.asarray(rms)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray, beats, symbols, fs_hz: float) -> np.ndarray:
    """The SNR per lead (C,) as nst defines it, measured on a mixed record: A from the clean
    record, R from what was added (noisy - clean) over the noisy segments."""
    added = (noisy - clean)[noisy_mask(len(clean), fs_hz)]
    a, r = qrs_amplitude(clean, beats, symbols, fs_hz), noise_rms(added, fs_hz)
    return 10 * np.log10(a**2 / 8 / r**2)


def noisy_segments(n_samples: int, fs_hz: float) -> list[tuple[int, int]]:
    """[start, stop) samples of the noisy segments a record of this length holds."""
    out = []
    for k in range(N_NOISY):
        a = int(round((LEARN_S + 2 * k * SEGMENT_S) * fs_hz))
        b = min(int(round((LEARN_S + (2 * k + 1) * SEGMENT_S) * fs_hz)), n_samples)
        if a < b:
            out.append((a, b))
    return out


def noisy_mask(n_samples: int, fs_hz: float) -> np.ndarray:
    """(n,) True in the noisy segments."""
    mask = np.zeros(n_samples, dtype=bool)
    for a, b in noisy_segments(n_samples, fs_hz):
        mask[a:b] = True
    return mask


def nst_mix(signal: np.ndarray, noise: np.ndarray, gain: np.ndarray, fs_hz: float) -> np.ndarray:
    """nst's output: ``signal + gain * noise`` in the noisy segments, in ADC units.

    signal, noise : (n, C) in mV (noise read in step with the signal: its sample t is added
    to the signal's sample t); gain : (C,). At each switch of the gain the output's offset
    is shifted so that it continues from the last sample written (nst's ``z``), so a
    segment adds ``gain * (noise[t] - noise[start])`` on top of the offset left by the
    segments before it; each output sample is truncated to an integer number of ADC units.
    Returns (n, C) float64 in mV.
    """
    vin = np.round(np.asarray(signal, dtype=np.float64) * ADC_PER_MV)
    nse = np.round(np.asarray(noise, dtype=np.float64) * ADC_PER_MV)
    g = np.asarray(gain, dtype=np.float64)[None, :]
    vout = vin.copy()
    z = np.zeros(vin.shape[1])
    prev_stop = 0
    for a, b in noisy_segments(len(vin), fs_hz):
        vout[prev_stop:a] = vin[prev_stop:a] - z  # clean: the offset left so far
        # Switch on: nst reads the noise sample before the segment, which the recovered noise
        # does not hold; the segment's first sample stands for it (a one-sample difference).
        z = np.trunc(vin[a - 1] + g[0] * nse[a] - vout[a - 1])
        vout[a:b] = np.trunc(vin[a:b] + g * nse[a:b] - z)
        z = np.trunc(vin[b - 1] - vout[b - 1])  # switch off
        prev_stop = b
    vout[prev_stop:] = vin[prev_stop:] - z
    return vout / ADC_PER_MV


def em_noise(n_samples: int, fs_hz: float, data_dir=None) -> np.ndarray:
    """The real electrode-motion noise laid out on a record of ``n_samples``: (n, 2) mV,
    NSTDB segment k in the record's noisy segment k, zero elsewhere."""
    import wfdb

    from pipeline.read.locate import candidate_roots

    roots = [root / NOISE_FOLDER for _, root in candidate_roots(data_dir)]
    folder = next((r for r in roots if (r / "em_seg1.hea").is_file()), None)
    if folder is None:
        raise DataUnavailableError(
            f"the electrode-motion noise ({NOISE_FOLDER}/em_seg1..6) is in none of {[str(r) for r in roots]}"
        )
    out = np.zeros((n_samples, 2))
    for k, (a, b) in enumerate(noisy_segments(n_samples, fs_hz)):
        rec = wfdb.rdrecord(str(folder / f"em_seg{k + 1}"))
        if abs(rec.fs - fs_hz) > 1e-6:
            raise DataUnavailableError(f"{folder}/em_seg{k + 1}: {rec.fs} Hz, the record {fs_hz} Hz")
        out[a:b] = rec.p_signal[: b - a]
    return out


def full_em_noise(fs_hz: float, data_dir=None) -> np.ndarray:
    """All 12 minutes of the real noise, (n, 2) mV (R is measured over them)."""
    n = int(round((LEARN_S + 2 * N_NOISY * SEGMENT_S) * fs_hz))
    return em_noise(n, fs_hz, data_dir)[noisy_mask(n, fs_hz)]


def _bandpass(x: np.ndarray, fs_hz: float, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    high = min(high, 0.45 * fs_hz)
    return sosfiltfilt(butter(4, [low, high], "bandpass", fs=fs_hz, output="sos"), x, axis=0)


def make_noise(n_samples: int, n_channels: int, fs_hz: float, seed: int) -> np.ndarray:
    """Generated noise (the synthetic column): baseline wander + muscle + electrode-motion
    transients, each a third of the power: (n, C).

    - baseline wander: sinusoids of 0.05-0.5 Hz with random phases and a slow random walk;
    - muscle (EMG): Gaussian noise band-passed to 20-150 Hz, in bursts of 0.2-2 s;
    - electrode motion: steps decaying in 0.1-0.5 s and biphasic swings of 40-200 ms at
      0.5-3 per second, over band-limited 1-15 Hz noise.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs_hz
    out = np.zeros((n_samples, n_channels))
    for c in range(n_channels):
        bw = sum(
            rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
            for f in rng.uniform(0.05, 0.5, 4)
        )
        bw = bw + np.cumsum(rng.normal(0, 1, n_samples)) / np.sqrt(fs_hz * 60)
        emg = _bandpass(rng.normal(0, 1, n_samples), fs_hz, 20.0, 150.0)
        envelope = np.zeros(n_samples)
        pos = 0
        while pos < n_samples:  # bursts of 0.2-2 s, gaps of 0-1 s
            length = int(rng.uniform(0.2, 2.0) * fs_hz)
            envelope[pos : pos + length] = rng.uniform(0.5, 1.5)
            pos += length + int(rng.uniform(0, 1.0) * fs_hz)
        emg = emg * envelope
        em = _bandpass(rng.normal(0, 1, n_samples), fs_hz, 1.0, 15.0) * 0.3
        n_events = rng.poisson(rng.uniform(0.5, 3.0) * n_samples / fs_hz)
        for start in rng.integers(0, n_samples, n_events):
            if rng.random() < 0.5:  # a step that decays
                tau = rng.uniform(0.1, 0.5) * fs_hz
                k = np.arange(min(n_samples - start, int(6 * tau)))
                em[start : start + len(k)] += rng.normal(0, 3) * np.exp(-k / tau)
            else:  # a biphasic swing
                width = int(rng.uniform(0.04, 0.2) * fs_hz)
                k = np.arange(2 * width)
                shape = np.sin(np.pi * k / width) * np.where(k < width, 1, -1)
                em[start : start + 2 * width] += (rng.normal(0, 3) * shape)[: n_samples - start]
        for part in (bw, emg, em):
            part -= part.mean()
            out[:, c] += part / np.sqrt(np.mean(part**2) * 3)
    return out


def stress_record(
    signal: np.ndarray, beats, symbols, fs_hz: float, snr_db: float, noise: np.ndarray, reference_noise=None
) -> np.ndarray:
    """``signal`` (n, C) mV with ``noise`` (n, >=C) added as nst adds it at ``snr_db``;
    R is measured on ``reference_noise`` (default: ``noise`` in the noisy segments)."""
    c = signal.shape[1]
    ref = noise[noisy_mask(len(noise), fs_hz)] if reference_noise is None else reference_noise
    gain = nst_gain(qrs_amplitude(signal, beats, symbols, fs_hz), noise_rms(ref[:, :c], fs_hz), snr_db)
    return nst_mix(signal, noise[:, :c], gain, fs_hz)


def xqrs(signal: np.ndarray, fs_hz: float) -> np.ndarray:
    """wfdb's XQRS on one lead (n,): the QRS sample indices."""
    import logging

    from wfdb import processing

    logging.getLogger("wfdb").setLevel(logging.WARNING)
    detector = processing.XQRS(sig=np.asarray(signal, dtype=np.float64), fs=fs_hz)
    detector.detect(verbose=False)
    return np.asarray(detector.qrs_inds, dtype=np.int64)


def _decisions(folder, artifact: str, spec, x: np.ndarray) -> list[dict]:
    from pipeline.runtime.session import open_session

    session = open_session(folder, artifact, source=spec)
    step = int(spec.fs_hz)
    events = [e for i in range(0, len(x), step) for e in session.push(x[i : i + step])]
    return [e for e in events + session.flush() if e["type"] == "beat"]


def _segment_of(samples: np.ndarray, n_samples: int, fs_hz: float) -> np.ndarray:
    """Per sample index: 1 in a noisy segment, 0 in a clean one after minute 5, -1 before."""
    mask = noisy_mask(n_samples, fs_hz)
    s = np.clip(np.asarray(samples, dtype=np.int64), 0, n_samples - 1)
    return np.where(s < LEARN_S * fs_hz, -1, mask[s].astype(np.int64))


def score(beats: list[dict], truth: np.ndarray, truth_class: np.ndarray, n_samples: int, fs_hz: float) -> dict:
    """The device's figures of one run: counts over the noisy segments (QRS over all and good
    decisions, V over good decisions) and decisions / flagged ones per segment kind."""
    from pipeline.metrics import match_pairs

    tol = int(round(MATCH_S * fs_hz))
    at = np.array([b["sample"] for b in beats], dtype=np.int64)
    good = np.array([b["quality"] == "good" for b in beats], dtype=bool)
    is_v = np.array([b.get("class") == "V" for b in beats], dtype=bool)
    seg_d, seg_t = _segment_of(at, n_samples, fs_hz), _segment_of(truth, n_samples, fs_hz)
    t_idx = np.flatnonzero(seg_t == 1)
    out = {}
    d_idx = np.flatnonzero(seg_d == 1)
    ia, ib = match_pairs(truth[t_idx], at[d_idx], tol)
    out["tp"], out["fn"], out["fp"] = len(ia), len(t_idx) - len(ia), len(d_idx) - len(ia)
    g_idx = d_idx[good[d_idx]]
    ga, gb = match_pairs(truth[t_idx], at[g_idx], tol)
    out["good_tp"], out["good_fp"] = len(ga), len(g_idx) - len(ga)
    true_v = truth_class[t_idx][ga] == "V"
    said_v = is_v[g_idx][gb]
    unmatched_v = int(is_v[g_idx].sum() - said_v.sum())
    out["v_tp"] = int(np.sum(true_v & said_v))
    out["v_fn"] = int(np.sum(true_v & ~said_v))
    out["v_fp"] = int(np.sum(~true_v & said_v)) + unmatched_v
    for name, code in (("noisy", 1), ("clean", 0)):
        sel = seg_d == code
        out[f"decisions_{name}"] = int(sel.sum())
        out[f"flagged_{name}"] = int((sel & ~good).sum())
    after = seg_d >= 0
    out["decisions_all"], out["flagged_all"] = int(after.sum()), int((after & ~good).sum())
    return out


def score_xqrs(found: np.ndarray, truth: np.ndarray, n_samples: int, fs_hz: float) -> dict:
    from pipeline.metrics import match_pairs

    t = truth[_segment_of(truth, n_samples, fs_hz) == 1]
    d = found[_segment_of(found, n_samples, fs_hz) == 1]
    ia, _ = match_pairs(t, d, int(round(MATCH_S * fs_hz)))
    return {"x_tp": len(ia), "x_fn": len(t) - len(ia), "x_fp": len(d) - len(ia)}


def _add(acc: dict, counts: dict) -> None:
    for k, v in counts.items():
        acc[k] = acc.get(k, 0) + v


def run(
    folder,
    records: list[str],
    snrs,
    seconds: float | None,
    artifact: str,
    kinds=("real",),
    data_dir=None,
    with_xqrs: bool = True,
    log=lambda *_: None,
) -> dict:
    """Every record at every SNR and noise kind through the device session (and XQRS on the
    real noise); totals ``{kind: {snr: counts}}`` and ``{"clean": {snr: counts}}`` (the clean
    record scored at the same beats, the same for every SNR) and ``{"clean_record": counts}``."""
    from pipeline.read.datasets import dataset_record

    totals: dict = {"clean_record": {}}
    for rid in records:
        rec = dataset_record(f"mitdb:{rid}", data_dir=data_dir)
        fs = rec.fs_hz
        full = rec.signal.astype(np.float64)
        n = len(full) if seconds is None else min(len(full), int(round(seconds * fs)))
        annotated = rec.beats
        assert annotated is not None  # a MIT-BIH record is read with its .atr beats
        truth_all, symbols = annotated.sample, annotated.symbol
        keep = truth_all < n
        truth, truth_class = truth_all[keep], annotated.aami[keep]
        clean_beats = _decisions(folder, artifact, rec.spec, full[:n])
        clean_counts = score(clean_beats, truth, truth_class, n, fs)
        _add(totals["clean_record"], clean_counts)
        for kind in kinds:
            if kind == "real":
                noise = em_noise(len(full), fs, data_dir)
                reference = full_em_noise(fs, data_dir)
            else:
                noise = make_noise(len(full), full.shape[1], fs, seed=int(rid) * 100 + 1000)
                reference = None
            for snr in snrs:
                x = stress_record(full, truth_all, symbols, fs, snr, noise, reference)[:n]
                counts = score(_decisions(folder, artifact, rec.spec, x), truth, truth_class, n, fs)
                if kind == "real" and with_xqrs:
                    counts.update(score_xqrs(xqrs(x[:, 0], fs), truth, n, fs))
                _add(totals.setdefault(kind, {}).setdefault(snr, {}), counts)
                if kind == "real":
                    _add(totals.setdefault("clean", {}).setdefault(snr, {}), clean_counts)
                log(
                    f"  {rid} {kind} {snr:+d} dB: QRS Se {_pct(counts['tp'], counts['fn'])} "
                    f"+P {_pct(counts['tp'], counts['fp'])} good +P {_pct(counts['good_tp'], counts['good_fp'])}"
                    f" flagged {_pct(counts['flagged_noisy'], counts['decisions_noisy'] - counts['flagged_noisy'])}"
                    f" / {_pct(counts['flagged_clean'], counts['decisions_clean'] - counts['flagged_clean'])}"
                    + (f" XQRS Se {_pct(counts['x_tp'], counts['x_fn'])}" if "x_tp" in counts else "")
                )
    return totals


def collect_sqi(folder, records: list[str], snrs, seconds: float | None, artifact: str, data_dir=None, log=print):
    """Every decision's quality indices on ``records`` with the real noise at ``snrs`` (and
    clean, SNR None): rows ``(snr, segment, is_beat, bsqi, ksqi, psqi, nrel, confirmed, nsqi)``,
    segment 1 noisy, 0 clean after minute 5, -1 before; unassessed decisions left out.
    The thresholds do not change the indices, so one pass serves any thresholds."""
    from pipeline.metrics import match_pairs
    from pipeline.read.datasets import dataset_record

    rows = []
    reference = full_em_noise(360.0, data_dir)
    for rid in records:
        rec = dataset_record(f"mitdb:{rid}", data_dir=data_dir)
        fs, full = rec.fs_hz, rec.signal.astype(np.float64)
        n = len(full) if seconds is None else min(len(full), int(round(seconds * fs)))
        annotated = rec.beats
        assert annotated is not None  # a MIT-BIH record is read with its .atr beats
        truth = annotated.sample[annotated.sample < n]
        noise = em_noise(len(full), fs, data_dir)
        for snr in [None, *snrs]:
            x = (
                full[:n]
                if snr is None
                else stress_record(full, annotated.sample, annotated.symbol, fs, snr, noise, reference)[:n]
            )
            beats = [b for b in _decisions(folder, artifact, rec.spec, x) if b["sqi"]]
            at = np.array([b["sample"] for b in beats], dtype=np.int64)
            real = np.zeros(len(at), dtype=bool)
            real[match_pairs(truth, at, int(round(MATCH_S * fs)))[1]] = True
            seg = _segment_of(at, n, fs)
            for b, r, g in zip(beats, real, seg):
                q = b["sqi"]
                nrel = q.get("nrel")
                rows.append(
                    (
                        snr,
                        int(g),
                        bool(r),
                        q["bsqi"],
                        q["ksqi"],
                        q["psqi"],
                        np.nan if nrel is None else nrel,
                        q["confirmed"],
                        np.nan if q.get("nsqi") is None else q["nsqi"],
                    )
                )
            log(f"  {rid} {'clean' if snr is None else f'{snr:+d} dB'}: {len(beats)} decisions")
    return rows


def calibrate(
    rows,
    bsqi_grid=(0.8, 0.85, 0.9, 0.95),
    ksqi_grid=(0.0, 3.5, 4.0, 5.0),
    nrel_grid=(1.5, 1.75, 2.0, 2.5, 3.0),
    max_clean_record_pct=2.5,
    max_clean_segment_pct=4.5,
) -> list[dict]:
    """Each threshold set's figures on ``rows`` (from :func:`collect_sqi`), feasible ones
    (clean-record and clean-segment flagged shares under the limits) first, best first: the
    flagged share of noisy-segment decisions at <= 6 dB plus good +P at 6 and 0 dB."""
    from pipeline.runtime import quality as sqi

    snr = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=np.float64)
    seg = np.array([r[1] for r in rows])
    real = np.array([r[2] for r in rows], dtype=bool)
    b, k, p, nrel = (np.array([r[i] for r in rows], dtype=np.float64) for i in (3, 4, 5, 6))
    confirmed = np.array([r[7] for r in rows], dtype=bool)
    out = []
    for bt in bsqi_grid:
        for kt in ksqi_grid:
            for nt in nrel_grid:
                good = (b >= bt) & (k >= kt) & (p >= sqi.PSQI_LOW) & ~(nrel > nt) & confirmed
                after = seg >= 0

                def pct(mask, of):
                    return 100.0 * float(mask[of].mean()) if of.any() else float("nan")

                res = {"bsqi_noisy": bt, "ksqi_noisy": kt, "nrel_noisy": nt}
                res["clean_record_flagged"] = pct(~good, np.isnan(snr) & after)
                res["clean_segment_flagged"] = max(
                    pct(~good, (snr == s) & (seg == 0)) for s in np.unique(snr[~np.isnan(snr)])
                )
                for s in np.unique(snr[~np.isnan(snr)]):
                    noisy = (snr == s) & (seg == 1)
                    res[f"flagged_{s:+.0f}"] = pct(~good, noisy)
                    res[f"good_ppv_{s:+.0f}"] = pct(real, noisy & good)
                res["feasible"] = (
                    res["clean_record_flagged"] <= max_clean_record_pct
                    and res["clean_segment_flagged"] <= max_clean_segment_pct
                )
                low = [v for key, v in res.items() if key.startswith("flagged_") and float(key[8:]) <= 6]
                ppv = [res.get("good_ppv_+6", np.nan), res.get("good_ppv_+0", np.nan)]
                res["score"] = float(np.nanmean(low)) + float(np.nansum(ppv))
                out.append(res)
    return sorted(out, key=lambda r: (not r["feasible"], -r["score"]))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pct(num: int, other: int) -> str:
    return f"{100 * num / (num + other):.1f}" if num + other else "n/a"


def rates(c: dict) -> dict:
    """Percentages of one SNR's counts (nan where undefined)."""

    def r(a, b):
        return 100.0 * a / (a + b) if a + b else float("nan")

    out = {
        "qrs_se": r(c["tp"], c["fn"]),
        "qrs_ppv": r(c["tp"], c["fp"]),
        "good_ppv": r(c["good_tp"], c["good_fp"]),
        "v_se": r(c["v_tp"], c["v_fn"]),
        "v_ppv": r(c["v_tp"], c["v_fp"]),
        "flagged_noisy": r(c["flagged_noisy"], c["decisions_noisy"] - c["flagged_noisy"]),
        "flagged_clean": r(c["flagged_clean"], c["decisions_clean"] - c["flagged_clean"]),
        "flagged_all": r(c["flagged_all"], c["decisions_all"] - c["flagged_all"]),
    }
    if "x_tp" in c:
        out["xqrs_se"], out["xqrs_ppv"] = r(c["x_tp"], c["x_fn"]), r(c["x_tp"], c["x_fp"])
    return out


def _f(v: float, digits: int = 1) -> str:
    return "n/a" if v != v else f"{v:.{digits}f}"


def table(totals: dict, records: list[str], seconds: float | None, artifact: str) -> str:
    """The Markdown table of a run."""
    span = "whole records" if seconds is None else f"first {seconds:g} s each"
    kinds = [k for k in KINDS if k in totals]
    head = ["SNR dB"]
    if "real" in kinds:
        head += [
            "QRS Se / +P (all)",
            "QRS +P (good)",
            "V Se / +P (good)",
            "V Se / +P (good), clean record",
            "flagged % noisy / clean",
        ]
        if any("x_tp" in c for c in totals["real"].values()):
            head.append("XQRS Se / +P")
    if "synthetic" in kinds:
        head += ["synthetic: QRS Se / +P (all)", "synthetic: QRS +P (good)", "synthetic: flagged % noisy / clean"]
    clean_all = rates(totals["clean_record"])
    lines = [
        f"Noise stress test on {len(records)} DS2 record(s) ({', '.join(records)}), {span}, {artifact}; "
        f"noise added as PhysioNet's nst adds it ({'real electrode motion (NSTDB em)' if 'real' in kinds else ''}"
        f"{' and ' if len(kinds) == 2 else ''}{'generated noise (synthetic)' if 'synthetic' in kinds else ''}) in "
        "alternating 2-minute segments after minute 5. Se / +P % over the noisy segments, beats matched within "
        "150 ms; good: decisions the device marked good; flagged: decisions not marked good, in noisy / clean "
        "segments; XQRS: wfdb's detector on the first lead. The clean records: "
        f"{_f(clean_all['flagged_all'])} % of decisions after minute 5 flagged.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    snrs = sorted({s for k in kinds for s in totals[k]}, reverse=True)
    for snr in snrs:
        cells = [f"{snr:+d}"]
        if "real" in kinds:
            c = totals["real"].get(snr)
            if c is None:
                cells += ["n/a"] * (len(head) - 1)
            else:
                r, cl = rates(c), rates(totals["clean"][snr])
                cells += [
                    f"{_f(r['qrs_se'])} / {_f(r['qrs_ppv'])}",
                    _f(r["good_ppv"]),
                    f"{_f(r['v_se'])} / {_f(r['v_ppv'])}",
                    f"{_f(cl['v_se'])} / {_f(cl['v_ppv'])}",
                    f"{_f(r['flagged_noisy'], 0)} / {_f(r['flagged_clean'])}",
                ]
                if "xqrs_se" in r:
                    cells.append(f"{_f(r['xqrs_se'])} / {_f(r['xqrs_ppv'])}")
        if "synthetic" in kinds:
            c = totals["synthetic"].get(snr)
            syn = rates(c) if c else None
            cells += (
                [
                    f"{_f(syn['qrs_se'])} / {_f(syn['qrs_ppv'])}",
                    _f(syn["good_ppv"]),
                    f"{_f(syn['flagged_noisy'], 0)} / {_f(syn['flagged_clean'])}",
                ]
                if syn
                else ["n/a"] * 3
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from pipeline.read.cards import load_card

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("folder", help="an ECG artifact folder")
    parser.add_argument("--noise", choices=("real", "synthetic", "both"), default="real", help="default: real")
    parser.add_argument("--records", nargs="+", default=None, help="DS2 records (default: all 22)")
    parser.add_argument("--snr", nargs="+", type=int, default=list(DEFAULT_SNRS), help="SNRs in dB")
    parser.add_argument("--seconds", type=float, default=None, help="the first SECONDS of each record (default: all)")
    parser.add_argument("--artifact", default="tflite_float32")
    parser.add_argument("--no-xqrs", action="store_true", help="skip wfdb's XQRS beside the device")
    parser.add_argument("--json", help="also write the totals here")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="no run: the table of runs saved with --json (records split over runs)",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help=f"no stress test: the quality thresholds' figures on DS1 records (default {' '.join(CALIBRATION_RECORDS)})",
    )
    parser.add_argument("--write", action="store_true", help="write the table into its README block")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    def command(seconds, artifact, kinds) -> str:  # the run a table comes from, for its block
        noise = "both" if len(kinds) == 2 else kinds[0]
        span = f" --seconds {seconds:g}" if seconds is not None else ""
        return f"python -m pipeline.validate.noise_stress ARTIFACTS --artifact {artifact} --noise {noise}{span} --write"

    if args.calibrate:
        records = args.records or list(CALIBRATION_RECORDS)
        if in_ds2 := [r for r in records if r in load_card("mitdb").splits["DS2"]]:
            parser.error(f"--records: {in_ds2} are DS2 (the test set); calibrate on DS1")
        snrs = [s for s in args.snr if s >= 0] if args.snr == list(DEFAULT_SNRS) else args.snr
        rows = collect_sqi(args.folder, records, snrs, args.seconds, args.artifact, args.data_dir, log=_log)
        for res in calibrate(rows)[:10]:
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}))
        return 0
    if args.merge:
        saved = [json.loads(Path(f).read_text()) for f in args.merge]
        totals: dict = {}
        records = [r for d in saved for r in d["records"]]
        for d in saved:
            _add(totals.setdefault("clean_record", {}), d["totals"]["clean_record"])
            for kind, per_snr in d["totals"].items():
                if kind != "clean_record":
                    for snr, counts in per_snr.items():
                        _add(totals.setdefault(kind, {}).setdefault(int(snr), {}), counts)
        text = table(totals, records, saved[0]["seconds"], saved[0]["artifact"])
        print(text)
        if args.write:
            from pipeline.readme import write_block

            kinds = [k for k in KINDS if k in totals]
            write_block("noise-stress", text, command(saved[0]["seconds"], saved[0]["artifact"], kinds))
        return 0
    ds2 = load_card("mitdb").splits["DS2"]
    records = args.records or list(ds2)
    if not_ds2 := [r for r in records if r not in ds2]:
        parser.error(f"--records: {not_ds2} not in DS2 (a stress test never runs on training patients)")
    if args.seconds is not None and args.seconds <= LEARN_S:
        parser.error(f"--seconds: {args.seconds:g} ends before the first noisy segment (at {LEARN_S:g} s)")
    kinds = list(KINDS) if args.noise == "both" else [args.noise]
    totals = run(
        args.folder,
        records,
        args.snr,
        args.seconds,
        args.artifact,
        kinds,
        args.data_dir,
        not args.no_xqrs,
        log=_log,
    )
    text = table(totals, records, args.seconds, args.artifact)
    print(text)
    if args.json:
        by_snr = {k: {str(s): c for s, c in v.items()} if k != "clean_record" else v for k, v in totals.items()}
        Path(args.json).write_text(
            json.dumps(
                {"records": records, "seconds": args.seconds, "artifact": args.artifact, "totals": by_snr}, indent=2
            )
        )
    if args.write:
        from pipeline.readme import write_block

        write_block("noise-stress", text, command(args.seconds, args.artifact, kinds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
