"""Beat detection as the device does it, on every MIT-BIH record: the model's causal
filter at its rate, then the streaming Pan-Tompkins detector (and the second, curve-length
detector the quality index uses), matched to the annotations within 150 ms.

    python -m pipeline.validate.detection ARTIFACT_DIR [--records 100 101 ...] [--fs 128]

``--fs`` first takes each record to another rate (scipy's resample_poly, as another
recorder would have sampled it), to show what the session's resampler keeps. Figures are
printed; nothing is asserted here (the tests hold a few records to their numbers).
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import numpy as np


def detect(folder, signal: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """R peaks found by the session's front end on ``signal`` (n, channels) at ``fs_hz``,
    at the input's rate: (Pan-Tompkins, curve-length)."""
    from pipeline.manifest import read_manifest
    from pipeline.preprocess import Preprocessor, PreprocessSpec
    from pipeline.preprocess.resample import Resampler
    from pipeline.runtime.qrs import PanTompkins
    from pipeline.runtime.quality import LengthTransformQRS

    m = read_manifest(folder, verify_files=False)
    spec = PreprocessSpec.from_dict(m.preprocess)
    x = signal[:, :1].astype(np.float64)
    if abs(fs_hz - spec.fs_in_hz) > 1e-9:
        r = Resampler(fs_hz, spec.fs_in_hz, 1)
        x = np.concatenate([r.process(x), r.process(np.repeat(x[-1:], r.half_width + 1, axis=0))])
        x = x[: int(np.ceil(len(signal) * spec.fs_in_hz / fs_hz))]
    y = Preprocessor(spec, 1, sos=np.asarray(m.preprocess["sos"])).process(x)[:, 0]
    step = int(spec.fs_out_hz)
    a, b = PanTompkins(spec.fs_out_hz), LengthTransformQRS(spec.fs_out_hz)
    pt, lt = [], []
    for i in range(0, len(y), step):
        pt += a.push(y[i : i + step])
        lt += b.push(y[i : i + step])
    to_input = fs_hz / spec.fs_out_hz
    return np.round(np.array(pt) * to_input).astype(np.int64), np.round(np.array(lt) * to_input).astype(np.int64)


def main(argv=None) -> int:
    from pipeline.metrics import match_beats
    from pipeline.read.cards import load_card
    from pipeline.read.mitdb import read_mitdb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an ECG artifact folder (its filter and rate are used)")
    parser.add_argument("--records", nargs="+", default=None, help="default: all 48")
    parser.add_argument("--fs", type=float, default=None, help="take the records to this rate first")
    parser.add_argument("--write", action="store_true", help="write the totals into the README's block")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    records = args.records or load_card("mitdb").raw["records"]
    totals = {"pt": np.zeros(3, np.int64), "lt": np.zeros(3, np.int64)}
    print("| record | Pan-Tompkins Se % | +P % | curve length Se % | +P % |\n|---|---|---|---|---|")
    for rid in records:
        rec = read_mitdb(rid, args.data_dir)
        assert rec.beats is not None  # read_mitdb reads the .atr beats with the signal
        x, truth, fs = rec.signal, rec.beats.sample, rec.fs_hz
        if args.fs:
            from scipy.signal import resample_poly

            ratio = Fraction(args.fs).limit_denominator(1000) / Fraction(fs).limit_denominator(1000)
            x = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator, axis=0)
            truth = np.round(truth * args.fs / fs).astype(np.int64)
            fs = args.fs
        pt, lt = detect(args.folder, x, fs)
        cells = []
        for name, beats in (("pt", pt), ("lt", lt)):
            m = match_beats(truth, beats, int(round(0.15 * fs)))
            totals[name] += [m["tp"], m["fn"], m["fp"]]
            cells += [f"{100 * m['se']:.2f}", f"{100 * m['ppv']:.2f}"]
        print(f"| {rid} | " + " | ".join(cells) + " |", flush=True)
    out = []
    for name in ("pt", "lt"):
        tp, fn, fp = totals[name]
        out += [f"{100 * tp / (tp + fn):.2f}", f"{100 * tp / (tp + fp):.2f}"]
    print(f"| all {len(records)} | " + " | ".join(out) + " |")
    if args.write:
        from pipeline.readme import write_block

        rate = f" taken to {args.fs:g} Hz first" if args.fs else ""
        write_block(
            "detection",
            "\n".join(
                [
                    f"Beat detection on all {len(records)} MIT-BIH records{rate} (MLII, the model's filter at its rate, "
                    "150 ms matching window, no exclusions):",
                    "",
                    "| detector | Se % | +P % |",
                    "|---|---|---|",
                    f"| Pan-Tompkins (the session's) | {out[0]} | {out[1]} |",
                    f"| curve length (Zong et al. 2003; the quality index's second opinion) | {out[2]} | {out[3]} |",
                    "",
                    "Pan & Tompkins (1985) report Se 99.3 %, +P 99.5 %; Zong et al. (2003) 99.65 %, 99.77 %.",
                ]
            ),
            "python -m pipeline.validate.detection ARTIFACTS --write",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
