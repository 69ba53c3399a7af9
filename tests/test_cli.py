"""The data commands on the real databases."""

import json
import subprocess
import sys


def test_data_summary_json_counts(capsys):
    from pipeline.cli import main

    assert main(["data", "summary", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["mitdb"]["per_split"]
    assert {c: m["DS1"][c] for c in "NSVF"} == {"N": 45866, "S": 944, "V": 3788, "F": 415}
    assert {c: m["test (DS2)"][c] for c in "NSVF"} == {"N": 44259, "S": 1837, "V": 3221, "F": 388}
    assert {c: m["train (DS1)"][c] + m["val (DS1)"][c] for c in "NSVF"} == {c: m["DS1"][c] for c in "NSVF"}
    assert out["bonn"]["samples_per_segment"] == {"4097": 500}
    assert {s: v["segments"] for s, v in out["bonn"]["per_set"].items()} == dict.fromkeys(
        ["A_Z", "B_O", "C_N", "D_F", "E_S"], 100
    )
    e = out["eegmat"]
    assert len(e["per_subject"]) == 24
    assert sum(v["subjects"] for v in e["per_split"].values()) == 24
    assert all(v["task_s"] == 62.0 for v in e["per_subject"].values())


def test_console_script_help_explains_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "data", "--help"], capture_output=True, text=True, check=True
    )
    for word in ("check", "summary", "fetch"):
        assert word in result.stdout
