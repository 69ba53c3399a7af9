"""``biosig-edge export``: quantise and export a run folder."""

from __future__ import annotations

import sys

from pipeline.cli.common import data_dir, number


def cmd_export(args) -> int:
    from pipeline.export.export import export_run
    from pipeline.export.report import format_export

    out = export_run(
        args.run_dir,
        args.out,
        args.data_dir,
        eval_limit=args.eval_limit,
        representative_size=args.representative,
        force=args.force,
        stream_eval=args.stream_eval,
    )
    from pipeline.manifest import read_manifest

    manifest = read_manifest(out)
    print(format_export(manifest))
    print(f"artifact folder: {out}")
    missed = [k for k, v in (manifest.targets or {}).items() if not v["met"]]
    if missed:
        print(f"WARNING: targets missed: {', '.join(missed)} (see the table above)", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    """``export``."""
    p = sub.add_parser(
        "export",
        parents=[data_dir()],
        help="quantise and export a run to TFLite, ONNX and C",
        description="Convert a run folder's model to TFLite (float32, float16, "
        "dynamic-range int8, full int8 calibrated on the training split, "
        "16x8 where supported), ONNX (float32, dynamic int8), a C array "
        "of the int8 model for TFLM and generated C99 (float32, int8); run "
        "each in its runtime (the C compiled with gcc) on the test "
        "split against the float model; write manifest.json with sha256s.",
    )
    p.add_argument("run_dir", help="a run folder from 'biosig-edge train'")
    p.add_argument("--out", help="artifact folder (default: RUN_DIR/artifacts)")
    p.add_argument(
        "--eval-limit",
        type=number(0, 1e9, above=False, integer=True),
        default=0,
        help="evaluate on a stratified subset of this many test windows (default: all)",
    )
    p.add_argument(
        "--representative",
        type=number(0, 1e7, integer=True),
        default=500,
        help="training windows used to calibrate full int8 (default: 500)",
    )
    p.add_argument(
        "--stream-eval",
        type=number(0, 1e7, above=False, integer=True),
        default=500,
        help="test windows run chunk by chunk through each streaming variant (default: 500)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing artifact folder")
    p.set_defaults(func=cmd_export)
