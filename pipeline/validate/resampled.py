"""Recordings from other recorders: DS2 records taken to other rates, leads renamed, as
int16 converter counts, streamed through the model made for 360 Hz; beat detection and
decisions against the same records streamed natively.

    python -m pipeline.validate.resampled ARTIFACT_DIR [--records 100 103 105 111]
        [--rates 128 250] [--artifact tflite_float32] [--minutes 30] [--write]

Each record is taken to each rate with scipy's zero-phase ``resample_poly`` (as another
recorder would have sampled the same heart), rounded to int16 counts at MIT-BIH's gain
(200 per mV), its leads named ECG1/ECG2 (the session maps them by the model's aliases)
and its annotations moved to the new rate; the session resamples it back causally
(:mod:`pipeline.preprocess.resample`). Figures are printed and, with ``--write``, put in
the README's ``resampled`` block.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

import numpy as np


def at_rate(signal: np.ndarray, fs_in: float, fs_out: float, gain: float = 200.0) -> np.ndarray:
    """``signal`` as another recorder at ``fs_out`` would have stored it (int16 counts / gain)."""
    from scipy.signal import resample_poly

    if fs_out == fs_in:
        y = signal.astype(np.float64)
    else:
        ratio = Fraction(fs_out).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
        y = resample_poly(signal.astype(np.float64), ratio.numerator, ratio.denominator, axis=0)
    return (np.clip(np.round(y * gain), -32768, 32767) / gain).astype(np.float32)


def run(
    folder, records: list[str], rates: list[float], artifact: str, minutes: float, data_dir=None, log=lambda *_: None
) -> dict:
    """{rate: {"metrics": summary, "agreement": decisions equal native, "n_pairs": ...}};
    rate 0 is the native recording as read."""
    from pipeline.manifest import read_manifest
    from pipeline.metrics import match_pairs
    from pipeline.read.datasets import dataset_record
    from pipeline.read.record import SignalSpec
    from pipeline.runtime.session import open_session
    from pipeline.validate import score
    from pipeline.validate.heldout import Heldout

    manifest = read_manifest(folder)
    classes = list(manifest.classes)
    out = {}
    native_beats = {}
    for rate in [0.0, *rates]:
        heldouts, decisions = [], {}
        same = pairs = 0
        for rid in records:
            rec = dataset_record(f"mitdb:{rid}", data_dir=data_dir)
            assert rec.beats is not None  # a MIT-BIH record is read with its .atr beats
            n = int(minutes * 60 * rec.fs_hz)
            fs = rec.fs_hz if rate == 0 else rate
            x = rec.signal[:n] if rate == 0 else at_rate(rec.signal[:n], rec.fs_hz, fs)
            names = rec.channel_names if rate == 0 else ("ECG1", "ECG2")[: rec.signal.shape[1]]
            spec = SignalSpec(fs, tuple(names), rec.units)
            session = open_session(folder, artifact, source=spec, manifest=manifest)
            step = int(fs)
            events = [e for i in range(0, len(x), step) for e in session.push(x[i : i + step]) if e["type"] == "beat"]
            keep = rec.beats.sample < n
            truth = np.round(rec.beats.sample[keep] * fs / rec.fs_hz).astype(np.int64)
            heldouts.append(Heldout(rid, x, spec, beat_sample=truth, beat_class=rec.beats.aami[keep]))
            keys = np.array([e["sample"] for e in events], dtype=np.int64)
            decisions[rid] = (keys, np.array([e["probs"] for e in events]).reshape(-1, len(classes)))
            at_360 = np.round(keys * rec.fs_hz / fs).astype(np.int64)
            if rate == 0:
                native_beats[rid] = (at_360, [e["class"] for e in events])
            else:
                ref_keys, ref_cls = native_beats[rid]
                ia, ib = match_pairs(ref_keys, at_360, int(round(0.05 * rec.fs_hz)))
                pairs += len(ia)
                same += sum(ref_cls[i] == events[j]["class"] for i, j in zip(ia, ib))
            log(f"  {rid} at {fs:g} Hz: {len(events)} beats")
        metrics = score.summarise(score.ecg_confusion(heldouts, decisions, classes), classes, manifest.kind)
        out[rate] = {"metrics": metrics, "agreement": same / pairs if pairs else 1.0, "pairs": pairs}
    return out


def table(results: dict, records: list[str], minutes: float, artifact: str) -> str:
    lines = [
        f"{len(records)} DS2 records ({', '.join(records)}), first {minutes:g} min each, {artifact}; "
        "other rates: the records resampled (scipy resample_poly), int16 counts at 200/mV, leads named "
        "ECG1/ECG2, streamed through the 360 Hz model by the session's resampler.",
        "",
        "| input | QRS Se % | QRS +P % | kappa | S Se / +P % | V Se / +P % | decisions = native % |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate, r in results.items():
        m = r["metrics"]
        pc = m["per_class"]
        total = sum(pc[c]["support"] for c in pc)
        missed, false = m["beats_missed"], m["false_detections"]
        detected = total - missed
        se = 100 * detected / total if total else float("nan")
        ppv = 100 * detected / (detected + false) if detected + false else float("nan")
        name = "360 Hz (native)" if rate == 0 else f"{rate:g} Hz"
        agreement = "" if rate == 0 else f"{100 * r['agreement']:.2f}"
        lines.append(
            f"| {name} | {se:.2f} | {ppv:.2f} | {m['kappa']:.3f} | "
            f"{100 * pc['S']['se']:.1f} / {100 * pc['S']['ppv']:.1f} | "
            f"{100 * pc['V']['se']:.1f} / {100 * pc['V']['ppv']:.1f} | {agreement} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("folder", help="an ECG artifact folder")
    parser.add_argument("--records", nargs="+", default=["100", "103", "105", "111", "113", "117"])
    parser.add_argument("--rates", nargs="+", type=float, default=[128.0, 250.0])
    parser.add_argument("--artifact", default="tflite_float32")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--write", action="store_true", help="write the table into the README's block")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    results = run(
        args.folder,
        args.records,
        args.rates,
        args.artifact,
        args.minutes,
        args.data_dir,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    text = table(results, args.records, args.minutes, args.artifact)
    print(text)
    if args.write:
        from pipeline.readme import write_block

        write_block("resampled", text, "python -m pipeline.validate.resampled ARTIFACTS --write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
