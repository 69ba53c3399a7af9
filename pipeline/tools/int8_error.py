"""Where the int8 build loses float's decisions, on every held-out window of an artifact
folder: per-step h and c error per layer against the float reference, and the agreement
with float of the C's scheme and of each variant (:class:`firmware_export.int8_model.Int8Model`).

    python -m pipeline.tools.int8_error ARTIFACT_DIR [--data-dir DIR]

Needs the artifact folder's source run and the recordings on disk (the held-out windows
are rebuilt from them, :func:`pipeline.tools.identity_check.heldout_windows`). Figures are
printed, never asserted.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def main(argv: list[str] | None = None) -> int:
    """Where the int8 build loses float's decisions, on every held-out window of an artifact
    folder (its source run and the recordings on disk): per-step state error per layer, and
    the agreement with float of the C's scheme and of each variant."""
    import argparse
    from pathlib import Path

    from firmware_export.c_model import spec_from_weights
    from firmware_export.int8_model import Int8Model, state_error
    from pipeline.runtime.reference import NumpyLSTM
    from pipeline.tools.identity_check import heldout_windows

    parser = argparse.ArgumentParser(description=(main.__doc__ or "").splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    x, side, _, manifest = heldout_windows(args.folder, args.data_dir)
    with np.load(args.folder / "reference_float32.npz", allow_pickle=False) as data:
        weights = {k: data[k] for k in data.files}
    spec = spec_from_weights(weights, manifest.window.n_steps, list(manifest.classes))
    inputs = {"signal": x, "side": side} if side is not None else {"signal": x}
    ref = NumpyLSTM(weights).predict(inputs)
    print(
        f"{manifest.task}: {len(x):,} held-out windows ({manifest.split.by} split, test), "
        f"{x.shape[1]} steps; int8 build vs the float reference"
    )
    print(
        "\n| layer | step | mean abs h error | max abs h error | mean abs c error | max abs c error | mean abs h, c (float) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in state_error(Int8Model(spec), spec, x):
        for t in sorted({0, x.shape[1] // 4, x.shape[1] // 2, x.shape[1] - 1}):
            print(
                f"| {row['layer']} | {t + 1} | {row['h_mean'][t]:.2e} | {row['h_max'][t]:.2e} | {row['c_mean'][t]:.2e} | "
                f"{row['c_max'][t]:.2e} | {row['h_ref'][t]:.3f}, {row['c_ref'][t]:.3f} |"
            )
    variants: list[tuple[str, dict[str, Any]]] = [
        ("the C's scheme: int8 LSTM, table gates, float head", {}),
        ("  with the head in int8 (the scheme before)", {"int8_head": True}),
        ("  with exact activations (no table)", {"exact_activations": True}),
        ("  with h quantised to 16 bits", {"state_bits": 16}),
        ("  int8 head, 16-bit h, exact activations", {"int8_head": True, "state_bits": 16, "exact_activations": True}),
    ]
    print("\n| variant | decisions equal float % | max abs prob. diff |")
    print("|---|---|---|")
    for name, options in variants:
        probs = Int8Model(spec, **options).predict(x, side)
        print(f"| {name} | {100 * (probs.argmax(1) == ref.argmax(1)).mean():.2f} | {np.abs(probs - ref).max():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
