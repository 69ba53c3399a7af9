"""A noise stress test after the MIT-BIH Noise Stress Test Database's protocol, on DS2.

    python -m pipeline.validate.noise_stress ARTIFACT_DIR [--records 100 103 ...]
        [--snr 24 18 12 6 0 -6] [--minutes 30] [--artifact tflite_float32] [--write]

Protocol (Moody GB, Muldrow WE, Mark RG. A noise stress test for arrhythmia detectors.
Computers in Cardiology 11:381-384, 1984; PhysioNet's ``nst``): each record is clean for
its first 5 minutes (the detector's learning period), then noisy and clean in alternating
2-minute segments; one run per record and signal-to-noise ratio. The SNR is nst's: signal
power S = (median peak-to-peak amplitude of the annotated QRS complexes)^2 / 8, the power
of a sine of that amplitude; noise power N = mean square of the noise (mean removed per
second); each lead gets its own noise, scaled so that 10 log10(S/N) is the SNR.

The noise is generated, not taken from the NSTDB (not in this project's data): a third of
its power each from

- baseline wander: sinusoids of 0.05-0.5 Hz with random phases and a slow random walk;
- muscle (EMG): Gaussian noise band-passed to 20-150 Hz (to the Nyquist rate if lower),
  its amplitude modulated by bursts of 0.2-2 s;
- electrode motion: transients at 0.5-3 per second, each a step that decays in 0.1-0.5 s
  or a biphasic swing of 40-200 ms (spectrally inside the QRS band, as real electrode
  motion is: the kind that fools detectors), over band-limited 1-15 Hz noise.

Reported per SNR over the noisy segments (and the clean ones after minute 5, for the false
flags): beat detection Se/+P, V Se/+P of the model's decisions, and the share of
decisions flagged or judged unusable; all of it both with every decision and with the
unusable ones withheld (``--withhold``'s view: the decisions a device would still show).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

#: The protocol: clean learning period, then 2-minute segments, noisy first.
LEARN_S, SEGMENT_S = 300.0, 120.0
DEFAULT_SNRS = (24, 18, 12, 6, 0, -6)


def qrs_power(signal: np.ndarray, beats: np.ndarray, fs_hz: float) -> float:
    """nst's signal power: (median QRS peak-to-peak amplitude)^2 / 8, per lead (C,)."""
    half = int(round(0.05 * fs_hz))
    beats = beats[(beats > half) & (beats < len(signal) - half)]
    ptp = np.stack([np.ptp(signal[b - half : b + half], axis=0) for b in beats])
    return np.median(ptp, axis=0) ** 2 / 8


def noise_power(noise: np.ndarray, fs_hz: float) -> np.ndarray:
    """Mean square of the noise with the mean of each second removed, per lead (C,)."""
    n = int(fs_hz)
    blocks = noise[: len(noise) // n * n].reshape(-1, n, noise.shape[1])
    return np.mean((blocks - blocks.mean(axis=1, keepdims=True)) ** 2, axis=(0, 1))


def _bandpass(x: np.ndarray, fs_hz: float, low: float, high: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    high = min(high, 0.45 * fs_hz)
    return sosfiltfilt(butter(4, [low, high], "bandpass", fs=fs_hz, output="sos"), x, axis=0)


def make_noise(n_samples: int, n_channels: int, fs_hz: float, seed: int) -> np.ndarray:
    """Baseline wander + muscle + electrode motion, each of unit power: (n, C)."""
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


def noisy_mask(n_samples: int, fs_hz: float) -> np.ndarray:
    """True in the noisy 2-minute segments after the 5-minute learning period."""
    t = np.arange(n_samples) / fs_hz
    after = t - LEARN_S
    return (after >= 0) & ((after // SEGMENT_S) % 2 == 0)


def stress_record(signal: np.ndarray, beats: np.ndarray, fs_hz: float, snr_db: float, seed: int) -> np.ndarray:
    """``signal`` with noise at ``snr_db`` in the noisy segments of the protocol."""
    noise = make_noise(len(signal), signal.shape[1], fs_hz, seed)
    gain = np.sqrt(qrs_power(signal, beats, fs_hz) / noise_power(noise, fs_hz) / 10 ** (snr_db / 10))
    mask = noisy_mask(len(signal), fs_hz)
    return (signal + mask[:, None] * noise * gain[None, :]).astype(np.float32)


def score(events: list[dict], truth: np.ndarray, truth_class: np.ndarray, fs_hz: float) -> dict:
    """Detection and V figures over the noisy and clean segments, all and kept decisions.

    Returns {segment: {view: {tp, fn, fp, v_tp, v_fn, v_fp, decisions, flagged, unusable}}}.
    """
    from pipeline.metrics import match_pairs

    beats = [e for e in events if e["type"] == "beat"]
    mask = noisy_mask(int(max([*truth, *(b["sample"] for b in beats), 0]) + 1), fs_hz)
    out = {}
    for segment, want in (("noisy", True), ("clean", False)):
        t_sel = (truth >= LEARN_S * fs_hz) & (mask[truth] == want)
        for view in ("all", "kept"):
            sel = [
                b
                for b in beats
                if b["sample"] >= LEARN_S * fs_hz
                and mask[b["sample"]] == want
                and (view == "all" or b.get("class") is not None and b["quality"] != "unusable")
            ]
            keys = np.array([b["sample"] for b in sel], dtype=np.int64)
            t_idx = np.flatnonzero(t_sel)
            ia, ib = match_pairs(truth[t_idx], keys, int(round(0.15 * fs_hz)))
            tp = len(ia)
            is_v = np.array([b.get("class") == "V" for b in sel], dtype=bool)
            true_v = truth_class[t_idx] == "V"
            v_tp = int(np.sum(true_v[ia] & is_v[ib]))
            out.setdefault(segment, {})[view] = {
                "tp": tp,
                "fn": len(t_idx) - tp,
                "fp": len(keys) - tp,
                "v_tp": v_tp,
                "v_fn": int(true_v.sum()) - v_tp,
                "v_fp": int(is_v.sum()) - v_tp,
                "decisions": len(sel),
                "flagged": sum(b["quality"] != "good" for b in sel),
                "unusable": sum(b["quality"] == "unusable" for b in sel),
            }
    # Noisy segments judged unusable as a whole: most of their decisions flagged unusable.
    segs = []
    for k in range(int((len(mask) / fs_hz - LEARN_S) // SEGMENT_S) + 1):
        if k % 2:
            continue
        a, b = (LEARN_S + k * SEGMENT_S) * fs_hz, (LEARN_S + (k + 1) * SEGMENT_S) * fs_hz
        inside = [e for e in beats if a <= e["sample"] < b]
        if inside:
            segs.append(
                [
                    sum(e["quality"] != "good" for e in inside) / len(inside),
                    sum(e["quality"] == "unusable" for e in inside) / len(inside),
                ]
            )
    out["noisy_segments"] = {
        "n": len(segs),
        "mostly_flagged": sum(s[0] > 0.5 for s in segs),
        "mostly_unusable": sum(s[1] > 0.5 for s in segs),
    }
    return out


def run(folder, records: list[str], snrs, minutes: float, artifact: str, data_dir=None, log=lambda *_: None) -> dict:
    """Every record at every SNR through the device session; totals per SNR."""
    from pipeline.read.datasets import dataset_record
    from pipeline.runtime.session import open_session

    totals: dict = {}
    for rid in records:
        rec = dataset_record(f"mitdb:{rid}", data_dir=data_dir)
        n = int(minutes * 60 * rec.fs_hz)
        signal = rec.signal[:n].astype(np.float64)
        keep = rec.beats.sample < n
        truth, truth_class = rec.beats.sample[keep], rec.beats.aami[keep]
        scored = truth_class != "Q"
        truth, truth_class = truth[scored], truth_class[scored]
        for snr in snrs:
            x = stress_record(signal, truth, rec.fs_hz, snr, seed=int(rid) * 100 + int(snr) + 1000)
            session = open_session(folder, artifact, source=rec.spec)
            step = int(rec.fs_hz)
            events = [e for i in range(0, len(x), step) for e in session.push(x[i : i + step])]
            s = score(events, truth, truth_class, rec.fs_hz)
            log(
                f"  {rid} at {snr:+d} dB: noisy QRS +P {_pct(s['noisy']['all'], 'tp', 'fp')} (all), "
                f"{_pct(s['noisy']['kept'], 'tp', 'fp')} (kept); flagged {s['noisy']['all']['flagged']}"
                f"/{s['noisy']['all']['decisions']}"
            )
            t = totals.setdefault(snr, {})
            for segment in ("noisy", "clean"):
                for view in ("all", "kept"):
                    acc = t.setdefault(segment, {}).setdefault(view, {})
                    for k, v in s[segment][view].items():
                        acc[k] = acc.get(k, 0) + v
            seg = t.setdefault("noisy_segments", {})
            for k, v in s["noisy_segments"].items():
                seg[k] = seg.get(k, 0) + v
    return totals


def _pct(d: dict, tp: str, other: str) -> str:
    den = d[tp] + d[other]
    return f"{100 * d[tp] / den:.1f}" if den else "n/a"


def table(totals: dict, records: list[str], minutes: float, artifact: str) -> str:
    """The Markdown table of a run."""
    lines = [
        f"Noise stress test on {len(records)} DS2 record(s) ({', '.join(records)}), first {minutes:g} min each, "
        f"{artifact}; noise in alternating 2-minute segments after minute 5. QRS and V: Se / +P % over the noisy "
        f"segments, every decision (all) and with unusable ones withheld (kept); flagged: decisions marked noisy "
        f"or unusable, in noisy / clean segments; segments: noisy segments with most decisions flagged.",
        "",
        "| SNR dB | QRS Se / +P (all) | QRS Se / +P (kept) | V Se / +P (all) | V Se / +P (kept) | flagged % noisy / clean | unusable % noisy / clean | segments mostly flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for snr in sorted(totals, reverse=True):
        t = totals[snr]
        cells = [f"{snr:+d}"]
        for kind in ("qrs", "v"):
            for view in ("all", "kept"):
                d = t["noisy"][view]
                tp, fn, fp = (d["tp"], d["fn"], d["fp"]) if kind == "qrs" else (d["v_tp"], d["v_fn"], d["v_fp"])
                se = f"{100 * tp / (tp + fn):.1f}" if tp + fn else "n/a"
                ppv = f"{100 * tp / (tp + fp):.1f}" if tp + fp else "n/a"
                cells.append(f"{se} / {ppv}")
        for key in ("flagged", "unusable"):
            pcts = [100 * t[s]["all"][key] / max(t[s]["all"]["decisions"], 1) for s in ("noisy", "clean")]
            cells.append(f"{pcts[0]:.0f} / {pcts[1]:.1f}")
        seg = t["noisy_segments"]
        cells.append(f"{seg['mostly_flagged']} of {seg['n']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from pipeline.read.cards import load_card

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("folder", help="an ECG artifact folder")
    parser.add_argument("--records", nargs="+", default=None, help="DS2 records (default: all 22)")
    parser.add_argument("--snr", nargs="+", type=int, default=list(DEFAULT_SNRS), help="SNRs in dB")
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of each record (default 30)")
    parser.add_argument("--artifact", default="tflite_float32")
    parser.add_argument("--json", help="also write the totals here")
    parser.add_argument("--write", action="store_true", help="write the table into the README's block")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    records = args.records or load_card("mitdb").splits["DS2"]
    totals = run(
        args.folder,
        records,
        args.snr,
        args.minutes,
        args.artifact,
        args.data_dir,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    text = table(totals, records, args.minutes, args.artifact)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in totals.items()}, f, indent=2)
    if args.write:
        from pipeline.readme import write_block

        write_block("noise-stress", text, "python -m pipeline.validate.noise_stress ARTIFACTS --write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
