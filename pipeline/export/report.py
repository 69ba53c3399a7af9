"""The export table printed by ``biosig-edge export``."""

from __future__ import annotations

from pipeline.manifest import Manifest


def format_export(manifest: Manifest) -> str:
    """The table ``biosig-edge export`` prints: each artifact against the float model, TFLM's
    arena, and export's targets (markdown)."""
    ev = manifest.evaluation or {}
    ref = ev["float_reference"]
    test = manifest.split.test
    lines = [
        f"{manifest.task}: {ev['windows']} held-out windows ({manifest.split.by}s "
        f"{', '.join(test[:6])}{', ...' if len(test) > 6 else ''}); "
        f"float Keras macro-F1 {100 * ref['macro_f1']:.2f} %",
        "",
        "| artifact | bytes | agreement with float % | macro-F1 % | max abs diff | status |",
        "|---|---|---|---|---|---|",
    ]
    for a in manifest.artifacts:
        unchecked = a.extra.get("unchecked")
        if a.graph == "data" or (a.format == "c" and a.vs_float is None and unchecked is None):
            continue  # headers, TFLM arrays, check windows
        if not a.ok:
            lines.append(f"| {a.name} | - | - | - | - | FAILED: {(a.reason or '')[:90]} |")
            continue
        if a.format == "shared-library":  # the generated C for a CPU: run here or not
            checked = (
                f"= {a.source}, bit for bit"
                if a.extra.get("bits_equal_host_build")
                else f"built for {a.architecture}, not run here"
            )
            lines.append(f"| {a.name} | {a.bytes} | {checked} | | | ok |")
            continue
        if unchecked is not None:
            lines.append(f"| {a.name} | {a.bytes} | - | - | - | not checked: {str(unchecked)[:80]} |")
            continue
        v = a.vs_float or {}
        lines.append(
            f"| {a.name} | {a.bytes} | {100 * v['agreement']:.2f} | {100 * v['macro_f1']:.2f} | "
            f"{v['max_abs_diff']:.2e} | ok |"
        )
    fw = manifest.firmware or {}
    if fw.get("arena_bytes"):
        lines += [
            "",
            f"TFLM (tflite-micro) runs the int8 model: arena {fw['arena_bytes']} bytes; decisions equal "
            f"LiteRT int8 on {100 * fw['tflm_vs_litert_int8_agreement']:.1f} % of {fw['checked_windows']} windows.",
        ]
    lines += ["", "| target | value | required | |", "|---|---|---|---|"]
    for name, t in (manifest.targets or {}).items():
        value = f"{t['value']:.4g}"
        lines.append(f"| {name} | {value} | {t['target']} | {'met' if t['met'] else '**MISSED**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m pipeline.export.report ARTIFACTS [--write]``: the export table of an
    artifact folder (its manifest), and with ``--write`` into its block (export-<dataset>, found by name in README.md or docs/)."""
    import argparse

    from pipeline.manifest import read_manifest

    parser = argparse.ArgumentParser(description="The export table of an artifact folder, from its manifest.")
    parser.add_argument("folder", help="artifact folder from 'biosig-edge export'")
    parser.add_argument(
        "--write",
        action="store_true",
        help="write it into its block, export-<dataset> (docs/results.md today; found by name)",
    )
    args = parser.parse_args(argv)
    manifest = read_manifest(args.folder)
    text = format_export(manifest)
    print(text)
    if args.write:
        from pipeline.readme import write_block

        write_block(f"export-{manifest.dataset}", text, "python -m pipeline.export.report ARTIFACTS --write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
