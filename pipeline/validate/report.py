"""Write a validation report: ``report.json`` (every number), ``report.md`` (the summary)
and ``report.html`` (one self-contained file, figures embedded), plus the figures as PNG.

The Markdown and HTML tables come from one builder (:func:`tables`), so they cannot
disagree with each other; both are rounded views of ``report.json``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from pipeline.validate import plots

FIGURES = [
    ("confusion.png", "Confusion matrices of the streamed decisions (rows: annotation; counts, shaded by row)"),
    ("probabilities.png", "Class probabilities of each artifact against the float reference, decision by decision"),
    ("latency.png", "Wall time per decision"),
    ("strip.png", "The signal with the decisions made while streaming it"),
]


def fmt(value, spec: str = ".2f") -> str:
    """A number for a table; missing or NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if spec == ",":
        return f"{int(round(value)):,}"
    return format(value, spec)


#: Why tflite_int8 is slower than float32 here (python -m pipeline.tools.profile_litert --perf).
INT8_SPEED_NOTE = (
    " tflite_int8 is slower than float32 on this x86 CPU by design of LiteRT's kernels, not a fault "
    "of the model: its int8 LSTM computes the gates' sigmoid and tanh in 16-bit fixed point with "
    "scalar 'portable' code (about three quarters of its time; NEON versions exist only for ARM) "
    "where the float LSTM uses vectorised Eigen; XNNPACK takes only the dense head, not the LSTM."
)


def tables(report: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) for every table of the report, in order."""
    out = []
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    rec = report["recommendation"]
    targets = [t for t in ("raspberry_pi_cpu", "microcontroller") if t in rec]
    out.append(
        (
            "Recommended",
            ["target", "artifact", "why"],
            [
                [
                    rec[t].get("label", t),
                    rec[t]["artifact"] or ("none: FAILED" if rec[t].get("judged", True) else "none"),
                    rec[t]["reason"],
                ]
                for t in targets
            ],
            "An artifact is recommended only if it meets every counted budget; the run fails (exit 1) only "
            "when a target with artifacts to judge is left with none (rule: pipeline/validate/budgets.py)."
            + (
                f" Target {report['target']['label']}: this run's latencies x{report['target']['scale']:.2f} "
                f"(its calibration loop {report['target']['calibration_ms']:.0f} ms, this machine's "
                f"{report['target']['here_ms']:.0f} ms, median of the run); assumed: {report['target']['assumption']}."
                if report.get("target")
                else ""
            ),
        )
    )
    blocked = rec.get("not_recommended") or {}
    if blocked:
        out.append(
            (
                "Not recommended",
                ["artifact", "why"],
                [[name, "; ".join(reasons)] for name, reasons in blocked.items()],
                "Each missed a counted budget or export's agreement target, or did not run: real misses, each one artifact's, not a failure of the run.",
            )
        )
    header = [
        "artifact",
        "stored B",
        "decisions = float %",
        "max abs dp",
        "macro-F1 %",
        "drop pt",
        "kappa",
        "latency p50 / p95 / p99 / max ms",
        "p99 / ref",
        "x real time",
        "speed / ref",
        "peak RSS MB",
    ]
    rows = []
    for r in report["rows"]:
        if r["status"] != "ok":
            rows.append([r["artifact"], fmt(r["size_bytes"], ","), f"error: {r['error']}"] + [""] * (len(header) - 3))
            continue
        lat = r["latency_ms"]
        rows.append(
            [
                r["artifact"],
                f"{fmt(r['size_bytes'], ',')} {r.get('stored_as', '')}".strip(),
                fmt(r["agreement_pct"]),
                fmt(r["max_abs_diff"], ".1e"),
                fmt(100 * r["macro_f1"]),
                fmt(r["macro_f1_drop_pt"], "+.2f"),
                fmt(r["kappa"], ".3f"),
                " / ".join(fmt(lat[q]) for q in ("p50", "p95", "p99", "max")),
                fmt(r["p99_latency_ratio"]),
                fmt(r["x_real_time"], ".0f"),
                fmt(r["throughput_ratio"]),
                fmt(r["peak_rss_mb"], ".0f"),
            ]
        )
    split = report["split"]
    unit = "beats" if report["kind"] == "ecg-beats" else "windows"
    n_dec = ok[0]["decisions"] if ok else 0
    out.append(
        (
            "Every artifact, streamed",
            header,
            rows,
            f"{n_dec:,} {unit} decided by the reference on {len(split['recordings'])} held-out recordings "
            f"({split['signal_s'] / 3600:.2f} h of signal); ref = {report['reference']} in the same run, "
            + (
                "on Ray workers, unpinned, one thread"
                if report.get("distributed")
                else "on one pinned core, one thread"
            )
            + ". Stored B: what a device keeps for the model (the file the "
            "interpreter loads; the generated C's flash is in the Cortex-M4 table)."
            + (
                INT8_SPEED_NOTE
                if any(r["artifact"] == "tflite_int8" for r in ok) and report["machine"].get("arch") == "x86_64"
                else ""
            ),
        )
    )
    classes = report["classes"]
    pc_header = (
        ["artifact"]
        + [f"{c} Se / +P" for c in classes]
        + (["missed beats", "false detections"] if report["kind"] == "ecg-beats" else [])
    )
    pc_rows = []
    for r in ok:
        m = r["metrics"]
        cells = [
            f"{fmt(100 * m['per_class'][c]['se'], '.1f')} / {fmt(100 * m['per_class'][c]['ppv'], '.1f')}"
            for c in classes
        ]
        if report["kind"] == "ecg-beats":
            cells += [fmt(m["beats_missed"], ","), fmt(m["false_detections"], ",")]
        pc_rows.append([r["artifact"], *cells])
    note = (
        "End to end: beats found by the device's own QRS detector, matched to the annotations within "
        f"{1000 * report['method']['match_tolerance_s']:.0f} ms; Se counts missed beats, +P counts false "
        "detections; accuracy and kappa are over matched beats; Q beats are left out."
        if report["kind"] == "ecg-beats"
        else "Every window of a recording carries the recording's label."
    )
    out.append(("Per class (%)", pc_header, pc_rows, note))
    positive = next((r["metrics"]["positive_vs_rest"] for r in ok if "positive_vs_rest" in r["metrics"]), None)
    if positive:
        out.append(
            (
                f"{positive['class']} vs the rest, per window",
                ["artifact", "Se %", "Sp %"],
                [
                    [
                        r["artifact"],
                        fmt(100 * r["metrics"]["positive_vs_rest"]["se"]),
                        fmt(100 * r["metrics"]["positive_vs_rest"]["sp"]),
                    ]
                    for r in ok
                ],
                "",
            )
        )
    spec = {"B": ",", "MB": ".0f"}
    results = report["budget_results"]
    keys = list(dict.fromkeys(b["key"] for b in results))
    heads = {
        b["key"]: f"{b['what']} {'>=' if b['key'].startswith('min') else '<='} "
        f"{fmt(b['limit'], spec.get(b['unit'], '.2f'))} {b['unit']}"
        for b in results
    }
    b_rows = []
    for name in dict.fromkeys(b["artifact"] for b in results):
        budget_cells = {
            b["key"]: f"{fmt(b['value'], spec.get(b['unit'], '.2f'))} {b['unit']}"
            + (
                ""
                if b["passed"]
                else " FAIL"
                if b.get("counted", True)
                else " (busy machine)"
                if "busy" in b.get("note", "busy")
                else " (reported)"
            )
            for b in results
            if b["artifact"] == name
        }
        b_rows.append([name, *[budget_cells.get(k, "") for k in keys]])
    load = report["machine"].get("load") or {}
    uncounted = [b for b in results if not b["passed"] and not b.get("counted", True)]
    load_note = (
        f" Load while measuring: 1-min load average up to {fmt(load['load1_max'], '.1f')} on "
        f"{load['cpus']} CPUs, calibration loop spread {fmt(load['calibration_spread'], '.2f')}x"
        + (
            " on the Ray workers (their timing is reported, not counted: a distributed run)"
            if report.get("distributed")
            else " (a busy machine: absolute latency misses are reported, not counted; the ratio limits hold "
            "speed to the reference measured alongside)"
            if load.get("loaded")
            else " (quiet)"
        )
        + "."
        if load
        else ""
    )
    out.append(
        (
            "Budgets",
            ["artifact", *[heads[k] for k in keys]],
            b_rows,
            f"from {report['budget']['source']}: "
            + (
                "every limit met"
                if report["budget_passed"] and not uncounted
                else "every counted limit met"
                if report["budget_passed"]
                else f"{sum(not b['passed'] and b.get('counted', True) for b in results)} limit(s) missed (FAIL)"
            )
            + (
                f"; {len(uncounted)} latency miss(es) reported, not counted"
                if uncounted and report.get("distributed")
                else f"; {len(uncounted)} absolute latency miss(es) reported, not counted"
                if uncounted
                else ""
            )
            + ". Absolute latency is judged on a declared target (--target) or when you set it (your budget "
            "file, --max-p99-latency-ms); otherwise this machine's figure is reported beside the task's default."
            + (
                f" Latencies judged on {report['target']['label']}: this machine's x{report['target']['scale']:.2f}."
                if report.get("target")
                else ""
            )
            + load_note,
        )
    )
    e_rows = []
    checks = [(r["artifact"], r.get("export_check")) for r in report["rows"]]
    checks += list(((report.get("export") or {}).get("generated_c") or {}).items())
    for name, check in checks:
        if check:
            e_rows.append(
                [
                    name,
                    fmt(check["n"], ","),
                    fmt(100 * check["agreement"]),
                    fmt(check["max_abs_diff"], ".1e"),
                    fmt(100 * check["macro_f1"]),
                ]
            )
    out.append(
        (
            "At export: each artifact on windows cut at the annotations, against Keras",
            ["artifact", "windows", "decisions = float %", "max abs dp", "macro-F1 %"],
            e_rows,
            "From the manifest; the streamed numbers above include the device's own beat detection.",
        )
    )
    fw = (report.get("export") or {}).get("firmware") or {}
    if fw.get("arena_bytes"):
        out.append(
            (
                "Microcontroller (TFLite Micro, int8)",
                ["tensor arena B", "windows checked", "TFLM = LiteRT int8 %", "TFLM = float %"],
                [
                    [
                        fmt(fw["arena_bytes"], ","),
                        fmt(fw["checked_windows"], ","),
                        fmt(100 * fw["tflm_vs_litert_int8_agreement"]),
                        fmt(100 * fw["tflm_vs_float"]["agreement"]),
                    ]
                ],
                "From export (the TFLM Python interpreter on x86).",
            )
        )
    fc = report.get("firmware_c") or {}
    if fc.get("skipped"):
        out.append(("Microcontroller: generated C on a Cortex-M4", ["", ""], [["not measured", fc["skipped"]]], ""))
    elif fc:
        arena = fw.get("arena_bytes")
        head = [
            "model",
            "flash B",
            "static RAM B",
            "RAM with stack B",
            "instructions per decision",
            f"ms at {fc['clock_hz'] / 1e6:.0f} MHz",
            "decisions = float % (export)",
            "M4 = host build",
        ]
        body = [
            [
                name,
                fmt(r["flash_bytes"], ","),
                fmt(r["static_ram_bytes"], ","),
                fmt(r["ram_with_stack_bytes"], ","),
                fmt(r["instructions_mean"], ","),
                fmt(r["ms_at_clock"], ".1f"),
                fmt(100 * r["export_agreement"]) if r.get("export_agreement") is not None else "n/a",
                "bit for bit" if r["bits_equal_host"] else ("decisions" if r["decisions_equal_host"] else "NO"),
            ]
            for name, r in fc.items()
            if name.startswith("c_") and isinstance(r, dict)
        ]
        if arena:
            i8_bytes = fc.get("tflite_int8_bytes")
            body.append(
                [
                    "TFLite Micro, tflite_int8",
                    f"{fmt(i8_bytes, ',')} + interpreter" if i8_bytes else "n/a",
                    f"{fmt(arena, ',')} arena + interpreter",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        out.append(
            (
                f"Microcontroller: generated C on a Cortex-M4 ({fc['board']})",
                head,
                body,
                f"{fc['windows']} held-out windows embedded in a test firmware; arm-none-eabi-gcc -O2, "
                "sizes of the model's own object (flash = text + data; RAM = data + bss + its state struct; "
                "stack from -fstack-usage, summed); instructions counted by QEMU -icount shift=0 (one "
                "instruction per tick: real M4 cycles are somewhat more).",
            )
        )
    notes = report["split"].get("notes")
    if notes:
        out.append(
            (
                "Recordings (the user's own)",
                ["recording", "rate Hz", "channels", "units", "beats", "unknown annotation symbols", "notes"],
                [
                    [
                        n["id"],
                        fmt(n["fs_hz"], "g"),
                        ", ".join(n["channels"]),
                        ", ".join(sorted(set(n["units"]))),
                        fmt(n["beats"], ",") if "beats" in n else "",
                        ", ".join(f"{k} x{v}" for k, v in n.get("unknown_symbols", {}).items()) or "none",
                        "; ".join(n["warnings"]) or "",
                    ]
                    for n in notes
                ],
                "Each streamed at its own rate, units and channel names; the session converted them to the "
                "model's. Unknown annotation symbols are neither beats nor known non-beat marks: not scored.",
            )
        )
    for title, head, body, note in report.get("extra_tables", []):
        out.append((title, head, body, note))
    train = (report.get("training") or {}).get("test")
    if train:
        t_rows = [
            ["accuracy %", fmt(100 * train["accuracy"])],
            ["macro-F1 %", fmt(100 * train["macro_f1"])],
            ["kappa", fmt(train["kappa"], ".3f")],
        ]
        t_rows += [
            [f"{c} Se / +P %", f"{fmt(100 * v['se'], '.1f')} / {fmt(100 * v['ppv'], '.1f')}"]
            for c, v in train["per_class"].items()
        ]
        out.append(
            (
                "At training: the Keras model on the held-out windows",
                ["metric", "value"],
                t_rows,
                # The run folder by name: a path of the machine that trained it means nothing to a reader.
                f"From the run folder `{Path(report['training']['folder']).name}` ({report['training']['n_params']:,} "
                f"parameters, trained in {report['training']['train_seconds'] / 60:.1f} min).",
            )
        )
    m = report["machine"]
    out.append(
        (
            "Machine",
            ["", ""],
            [
                ["CPU", f"{m['cpu']} ({m['arch']}, {m['logical_cpus']} logical CPUs)"],
                _used(report),
                ["OS", m["os"]],
                ["versions", ", ".join(f"{k} {v}" for k, v in m["versions"].items())],
            ],
            "",
        )
    )
    return out


def _used(report: dict) -> list[str]:
    """The Machine table's row of what ran the measuring processes."""
    m, ray = report["machine"], report.get("distributed")
    if ray:
        nodes = ray["nodes"]
        return [
            "used",
            f"Ray ({'local' if ray['address'] == 'local' else 'cluster at ' + ray['address']}): {ray['workers']} CPUs "
            f"on {len(nodes)} node(s) ({', '.join(nodes)}), one task per recording, unpinned, "
            f"{m['threads']} thread per measuring process; the CPU above is the driver's",
        ]
    return ["used", f"core {m['pinned_core']}, {m['cores_used']} core, {m['threads']} thread"]


def _heading(report: dict) -> tuple[str, list[str]]:
    split = report["split"]
    title = f"Validation report: {report['task']}"
    if split.get("name") == "user records":
        where = (
            f"Recordings: {len(split['recordings'])} of {split['of_total']} in `{split['folder']}` "
            f"(the user's own, at their own rates, units and channel names; the model was trained on "
            f"{split['train']} {report['kind'] == 'ecg-beats' and 'records' or 'groups'} of its dataset)"
        )
    else:
        where = (
            f"Held-out split: {split['by']}s never seen in training ({split['train']} train, {split['val']} "
            f"validation): {len(split['recordings'])} of {split['of_total']} test recordings"
        )
    lines = [
        # the folder's name, not where it sat on the machine that ran it (reports are shared)
        f"Artifacts: `{Path(report['artifact_folder']).name}`",
        where
        + (f", first {split['seconds_per_recording']:.0f} s of each" if split["seconds_per_recording"] else "")
        + (
            ""
            if split["complete"]
            else ". **A SUBSET: not all the recordings.**"
            if len(split["recordings"]) < split["of_total"]
            else f". **A SUBSET: every recording, but only {split['signal_s'] / 3600:.2f} h of their signal.**"
        ),
        f"Made {report['created_utc']} in {report['wall_s'] / 60:.1f} min; pushes of "
        f"{1000 * report['method']['chunk_s']:.0f} ms; latency = {report['method']['latency']}.",
    ]
    if report.get("distributed"):
        lines.append(f"**Distributed run**: {report['distributed']['timing']}.")
    return title, lines


def to_markdown(report: dict) -> str:
    title, lines = _heading(report)
    out = [f"# {title}", "", *[f"{line}  " for line in lines], ""]
    for t, header, rows, note in tables(report):
        out += [f"## {t}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        out += ["", note, ""] if note else [""]
    out += ["## Figures", ""] + [f"![{cap}]({name})" for name, cap in FIGURES] + [""]
    return "\n".join(out)


def to_html(report: dict, figures: dict[str, bytes]) -> str:
    title, lines = _heading(report)
    esc = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.fail{color:#b00;font-weight:bold}"
        ".note{color:#555;font-size:13px}img{max-width:100%}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f"<p>{esc(line).replace('**', '')}</p>" for line in lines]
    for t, header, rows, note in tables(report):
        parts.append(f"<h2>{esc(t)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            parts.append(
                "<tr>"
                + "".join(
                    f"<td class='fail'>{esc(c)}</td>" if c.endswith("FAIL") else f"<td>{esc(c)}</td>" for c in row
                )
                + "</tr>"
            )
        parts.append("</table>" + (f"<p class='note'>{esc(note)}</p>" if note else ""))
    for name, caption in FIGURES:
        if name in figures:
            data = base64.b64encode(figures[name]).decode()
            parts.append(f"<h2>{esc(caption)}</h2><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_report(report: dict, heldouts, decisions: dict, latency_s: dict, out_dir: Path) -> None:
    """Figures, then report.json, report.md and report.html into ``out_dir``."""
    rows, classes, ref = report["rows"], report["classes"], report["reference"]
    # The strip's second lane: a streamed integer model if there is one, else the CPU pick.
    candidates = [
        report["recommendation"]["microcontroller"]["artifact"],
        "tflite_int8",
        "stream_tflite_int8",
        report["recommendation"]["raspberry_pi_cpu"]["artifact"],
    ]
    other = next((c for c in candidates if c in decisions and c != ref), None)
    figures = {
        "confusion.png": plots.confusion_grid(rows),
        "probabilities.png": plots.probability_scatter(rows, decisions, ref, classes),
        "latency.png": plots.latency_histograms(rows, latency_s),
    }
    if report["kind"] == "ecg-beats":
        figures["strip.png"] = plots.ecg_strip(heldouts, decisions, ref, other, classes)
    else:
        figures["strip.png"] = plots.eeg_strip(heldouts, decisions, ref, other, classes)
    for name, png in figures.items():
        (out_dir / name).write_bytes(png)
    (out_dir / "report.json").write_text(json.dumps(_jsonable(report), indent=1))
    (out_dir / "report.md").write_text(to_markdown(report))
    (out_dir / "report.html").write_text(to_html(report, figures))


#: The tables of a report that the README shows (the rest stays in report.md/html).
README_TABLES = (
    "Recommended",
    "Every artifact, streamed",
    "Per class (%)",
    "Budgets",
    "Microcontroller: generated C on a Cortex-M4",
)


def main(argv=None) -> int:
    """``python -m pipeline.validate.report REPORT_DIR [--write]``: a validation report's
    summary (recommendation, every artifact streamed, per class, budgets, the Cortex-M4),
    and with ``--write`` into the README's block."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="A validation report's summary, from its report.json.")
    parser.add_argument("folder", help="a report folder from 'biosig-edge validate'")
    parser.add_argument("--write", action="store_true", help="write it into the README's validation block")
    args = parser.parse_args(argv)
    report = json.loads((Path(args.folder) / "report.json").read_text())
    title, heading = _heading(report)
    out = [*[f"{line}  " for line in heading], ""]
    for t, header, rows, note in tables(report):
        if not t.startswith(README_TABLES):
            continue
        out += [f"**{t}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        out += ["", note, ""] if note else [""]
    text = "\n".join(out).rstrip() + "\n"
    print(text)
    if args.write:
        from pipeline.readme import write_block

        write_block(
            f"validation-{report['dataset']}", text, "python -m pipeline.validate.report RUN/validation --write"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
