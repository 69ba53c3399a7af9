"""Never silently wrong: one bad sample never blinds the device, noisy signal is flagged
(and can be withheld), every decision says how much to trust it. The recordings are real
(MIT-BIH, Bonn); the artefacts are the reliability probe's (a 100 mV sample, a value beyond
float32, a DC step, 10 s at int16 full scale) and the noise stress test's.
"""

import numpy as np
import pytest
from chunking import push_in_chunks

from pipeline.read.bonn import read_bonn
from pipeline.read.datasets import dataset_record
from pipeline.runtime.qrs import PanTompkins
from pipeline.runtime.quality import LengthTransformQRS
from pipeline.runtime.session import open_session

FS = 360


@pytest.fixture(scope="module")
def rec100():
    return dataset_record("mitdb:100")


def _stream(folder, record, x, artifact="reference_float32", **kw):
    session = open_session(folder, artifact, source=record.spec, **kw)
    return push_in_chunks(session.push, x, [FS])


def _beats_after(events, t_s):
    return [(e["sample"], e["class"]) for e in events if e["type"] == "beat" and e["sample"] >= t_s * FS]


@pytest.mark.parametrize(
    "case",
    ["spike_100mV", "spike_1e308", "spike_1e39", "spike_9mV_in_range", "int16_full_scale_10s", "step_3mV_in_range"],
)
def test_the_detector_and_filters_recover_within_2_s_of_a_bad_stretch(exported, rec100, case):
    """Reliability probe D1: a single 100 mV sample (or 1e308, or 10 s at int16 full
    scale) used to silence beat detection for the rest of the record, with no event."""
    _, out, _ = exported
    x = rec100.signal[: FS * 120].astype(np.float64)
    clean = _stream(out, rec100, x)
    bad = x.copy()
    at = FS * 40
    if case.startswith("spike"):
        bad[at] = {"spike_100mV": 100.0, "spike_1e308": 1e308, "spike_1e39": 1e39, "spike_9mV_in_range": 9.0}[case]
        end = at + 1
    elif case == "int16_full_scale_10s":
        bad[at : at + 10 * FS] = np.where(np.arange(10 * FS)[:, None] % 2, 32767.0, -32768.0)
        end = at + 10 * FS
    else:
        bad[at:] += 3.0  # a 3 mV electrode step, for good
        end = at + 1
    events = _stream(out, rec100, bad)
    after = end / FS + 2.0
    assert _beats_after(events, after) == _beats_after(clean, after)
    kinds = [e["kind"] for e in events if e["type"] == "signal_quality"]
    if case in ("spike_100mV", "spike_1e308", "spike_1e39"):
        assert kinds[0] == "spike"  # held, said, flagged
        flagged = [e for e in events if e["type"] == "beat" and "spike" in e["quality_flags"]]
        assert flagged and all(e["quality"] != "good" for e in flagged)
    if case == "int16_full_scale_10s":
        assert kinds[:3] == ["spike", "out_of_range", "recovered"]
    assert all(np.isfinite(e["probs"]).all() for e in events if e["type"] == "beat")


def test_a_dc_step_out_of_range_is_a_gap_not_a_silent_stop(exported, rec100):
    _, out, _ = exported
    x = rec100.signal[: FS * 60].astype(np.float64)
    x[FS * 30 :] += 1e6
    events = _stream(out, rec100, x)
    quality = [e for e in events if e["type"] == "signal_quality"]
    assert [q["kind"] for q in quality] == ["spike", "out_of_range"]  # held 50 ms, then refused
    assert quality[1]["channels"] == ["MLII", "V1|V2|V4|V5"]
    assert not _beats_after(events, 30.0)


def test_one_eeg_sample_beyond_float32_does_not_change_later_windows(exported_bonn):
    """Probe D1, EEG: a 1e39 sample turned 30 of the next 36 windows into 'seizure'."""
    _, out, _ = exported_bonn
    rec = read_bonn("A_Z", "Z001")
    x = rec.signal.astype(np.float64)
    bad = x.copy()
    bad[2000] = 1e39
    session = open_session(out, "stream_onnx_float32", source=rec.spec)
    clean = open_session(out, "stream_onnx_float32", source=rec.spec).push(x)
    events = session.push(bad)
    windows = [e for e in events if e["type"] == "window"]
    reference = [e for e in clean if e["type"] == "window"]
    assert len(windows) == len(reference)
    touched = [w["start_sample"] <= 2000 < w["end_sample"] for w in windows]
    assert all(w["quality"] != "good" for w, t in zip(windows, touched) if t)
    assert [w["class"] for w, t in zip(windows, touched) if not t] == [
        r["class"] for r, t in zip(reference, touched) if not t
    ]


def test_every_decision_carries_its_quality_and_unusable_ones_can_be_withheld(exported, rec100):
    _, out, _ = exported
    x = rec100.signal[: FS * 60].astype(np.float64)
    rng = np.random.default_rng(0)
    x[FS * 20 : FS * 40] += rng.normal(0, 1.0, (FS * 20, 2))  # 20 s of heavy noise
    flagged = _stream(out, rec100, x)
    withheld = _stream(out, rec100, x, withhold_unusable=True)
    beats = [e for e in flagged if e["type"] == "beat"]
    assert all(e["quality"] in ("good", "noisy", "unusable", "unassessed") and "sqi" in e for e in beats)
    noisy = [e for e in beats if 22 * FS <= e["sample"] < 38 * FS]
    assert sum(e["quality"] != "good" for e in noisy) >= 0.8 * len(noisy)
    # Clean before the noise: good once assessed (the first ~3 s cannot be: unassessed).
    assert all(e["quality"] == ("good" if e["sqi"] else "unassessed") for e in beats if e["sample"] < 15 * FS)
    kinds = [e["kind"] for e in flagged if e["type"] == "signal_quality"]
    assert "unusable" in kinds or "noisy" in kinds
    assert kinds[-1] == "clean"  # and it said when it ended
    # Withholding changes nothing but the unusable decisions' class and probabilities
    # (and what the stretch's event says is done with them).
    assert len(flagged) == len(withheld)
    for a, b in zip(flagged, withheld):
        if a["type"] == "beat" and a["quality"] == "unusable":
            assert b["class"] is None and b["probs"] is None and b["withheld"]
        elif a.get("kind") == "unusable":
            assert (a["action"], b["action"]) == ("decisions flagged", "decisions withheld")
        else:
            assert a == b


def test_quality_is_chunk_invariant_on_noisy_signal(exported, rec100):
    _, out, _ = exported
    x = rec100.signal[: FS * 60].astype(np.float64)
    x[FS * 20 : FS * 30] += np.random.default_rng(1).normal(0, 0.5, (FS * 10, 2))
    x[FS * 45] = 50.0
    whole = open_session(out, "reference_float32", source=rec100.spec).push(x)
    for sizes in ([1, 7, 360], [5000], [17, 1]):
        assert push_in_chunks(open_session(out, "reference_float32", source=rec100.spec).push, x, sizes) == whole


def test_the_second_detector_finds_the_beats(rec100):
    x = rec100.signal[:, 0].astype(np.float64)
    beats = push_in_chunks(LengthTransformQRS(360.0).push, x, [360])
    from pipeline.metrics import match_beats

    m = match_beats(rec100.beats.sample, np.array(beats), 54)
    assert m["se"] > 0.99 and m["ppv"] > 0.99, m
    minute = x[: 360 * 60]
    whole = push_in_chunks(LengthTransformQRS(360.0).push, minute, [len(minute)])
    assert push_in_chunks(LengthTransformQRS(360.0).push, minute, [1, 33, 700]) == whole


def test_pan_tompkins_learns_again_after_an_artefact_far_above_every_qrs(rec100):
    x = rec100.signal[: FS * 60, 0].astype(np.float64)
    x[FS * 10 : FS * 10 + 20] += 400.0  # in range for the detector alone
    beats = np.array(push_in_chunks(PanTompkins(360.0).push, x, [360]))
    truth = rec100.beats.sample[(rec100.beats.sample > FS * 13) & (rec100.beats.sample < FS * 59)]
    from pipeline.metrics import match_beats

    m = match_beats(truth, beats[beats > FS * 13], 54)
    assert m["se"] > 0.99, m


def test_nst_mixing_gives_the_requested_snr_within_0_1_db(rec100):
    """The real noise is added as PhysioNet's nst adds it: measured independently here as
    nst defines the SNR (sigamp's trimmed means: QRS peak-to-peak over +-50 ms of the first
    300 normal beats of the clean record; RMS of each second of what was added, mean
    removed), every lead is at the requested SNR; nothing is added before minute 5, and no
    step where a noisy segment begins (nst keeps the output continuous)."""
    from pipeline.validate import noise_stress as ns

    x = rec100.signal.astype(np.float64)
    noise = ns.em_noise(len(x), FS)
    beats, symbols = rec100.beats.sample, rec100.beats.symbol
    normal = [b for b, s in zip(beats, symbols) if s in "NLRaJASjenB/" and 18 <= b < len(x) - 18][:300]

    def trimmed(v):
        v = np.sort(np.asarray(v), axis=0)
        return v[len(v) // 20 : len(v) - len(v) // 20].mean(axis=0)

    amplitude = trimmed([np.ptp(x[b - 18 : b + 19], axis=0) for b in normal])
    for snr_db in (24, 6, -6):
        y = ns.stress_record(x, beats, symbols, FS, snr_db, noise, ns.full_em_noise(FS))
        added = y - x
        assert np.all(np.abs(added[: 300 * FS]) < 1e-6)
        first = 300 * FS
        assert np.all(np.abs(added[first] - added[first - 1]) < 0.05)  # continuous
        noisy = np.concatenate([added[a:b] for a, b in ns.noisy_segments(len(x), FS)])
        seconds = noisy[: len(noisy) // FS * FS].reshape(-1, FS, 2)
        rms = trimmed(np.sqrt(((seconds - seconds.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)))
        measured = 10 * np.log10(amplitude**2 / 8 / rms**2)
        assert np.all(np.abs(measured - snr_db) <= 0.1), (snr_db, measured)


def test_in_real_electrode_motion_noise_good_beats_are_beats_and_the_noise_is_flagged(tmp_path):
    """Issue 21, on 2 DS2 records (100: sinus rhythm; 213: frequent V and F beats) at 3 SNRs
    with the NSTDB's real electrode-motion noise, the first 11 minutes (noisy 5-7 and 9-11;
    the full table comes from python -m pipeline.validate.noise_stress): the decisions
    marked good in the noise are beats, the noise is flagged and the clean stretches
    between bursts are not. Detection and quality do not depend on the model: a synthetic
    folder (random weights) shows them as the trained one does."""
    from synthetic_artifact import make_folder

    from pipeline.validate.noise_stress import rates, run, table

    folder = make_folder(tmp_path / "art")
    records = ["100", "213"]
    totals = run(folder, records, [12, 6, 0], 660.0, "reference_float32", with_xqrs=True)
    r = {snr: rates(totals["real"][snr]) for snr in (12, 6, 0)}
    # Measured at 65d1228: good +P 99.4 / 86.0 % at 6 / 0 dB (before: 96.8-97.4 / 78-79 %),
    # flagged 54 / 80 % of noisy-segment decisions, at most 1.9 % in the clean stretches
    # (before: 7-9 % on 213), none of the clean records'.
    assert r[6]["good_ppv"] >= 97.0 and r[0]["good_ppv"] >= 82.0, r
    assert r[6]["flagged_noisy"] >= 45.0 and r[0]["flagged_noisy"] >= 70.0, r
    assert all(r[s]["flagged_clean"] <= 5.0 for s in r), r
    assert rates(totals["clean_record"])["flagged_all"] <= 3.0, totals["clean_record"]
    # Detection in the noise as sensitive as wfdb's XQRS on the first lead, to a point
    # (before: 92.3 % against XQRS's 98.1 % on record 100 at 0 dB).
    assert all(r[s]["qrs_se"] >= r[s]["xqrs_se"] - 1.5 for s in r), r
    assert "| +6 |" in table(totals, records, 660.0, "reference_float32")


def test_decisions_before_any_quality_check_are_unassessed_not_good(tmp_path, rec100):
    """Reliability probe 484b660, N2: for ~3 s after a start or a gap the quality indices
    have too little signal (``sqi`` is ``{}``), and those beats said "good": a consumer
    keeping good decisions kept exactly the unjudged ones. The weights do not matter here
    (detection and quality run before the model): a synthetic folder, no training."""
    from synthetic_artifact import make_folder

    folder = make_folder(tmp_path / "art")
    x = rec100.signal[: FS * 40].astype(np.float64)
    x[FS * 20 : FS * 21] = np.nan  # a gap: every state restarts at 21 s
    for withhold in (False, True):
        session = open_session(folder, "reference_float32", source=rec100.spec, withhold_unusable=withhold)
        beats = [e for e in push_in_chunks(session.push, x, [FS]) + session.flush() if e["type"] == "beat"]
        for start_s, stop_s in ((0, 20), (21, 40)):
            stretch = [b for b in beats if start_s * FS <= b["sample"] < stop_s * FS]
            early = [b for b in stretch if b["sample"] < (start_s + 2.5) * FS]
            assert len(early) >= 2 and all(b["sqi"] == {} for b in early)
            # Unjudged is said, and only there; the clean record is good once judged.
            assert all(b["quality"] == ("unassessed" if not b["sqi"] else "good") for b in stretch), stretch
            assert sum(b["quality"] == "good" for b in stretch) >= len(stretch) - 4
        # Not judged unusable either: shown with its class even when unusable ones are withheld.
        assert all(b["class"] is not None and b["quality_flags"] == [] for b in beats if b["quality"] == "unassessed")
