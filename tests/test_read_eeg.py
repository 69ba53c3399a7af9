"""Bonn and EEGMAT readers on the real databases."""

import numpy as np
import pytest

from pipeline.errors import ChannelError, ChecksumError, RecordError
from pipeline.read.bonn import bonn_segment_paths, read_bonn, read_bonn_segment
from pipeline.read.cards import load_card
from pipeline.read.eegmat import eegmat_label, eegmat_subjects, read_eegmat


def test_bonn_has_five_sets_of_100_segments_of_4097_samples():
    paths = bonn_segment_paths()
    assert sorted(paths) == ["A_Z", "B_O", "C_N", "D_F", "E_S"]
    assert {s: len(p) for s, p in paths.items()} == dict.fromkeys(paths, 100)
    # C_N is distributed with upper-case .TXT names, the others with .txt.
    assert {p.suffix for p in paths["C_N"]} == {".TXT"}
    assert {p.suffix for s in ("A_Z", "B_O", "D_F", "E_S") for p in paths[s]} == {".txt"}
    for set_name in paths:
        record = read_bonn_segment(paths[set_name][0])
        assert record.signal.shape == (4097, 1)
        assert record.label == set_name
        assert record.fs_hz == 173.61


def test_bonn_reads_upper_case_txt_by_segment_id():
    record = read_bonn("C_N", "N001")
    assert record.source.name == "N001.TXT"
    assert record.record_id == "N001"


def test_bonn_bad_text_and_wrong_length_name_the_file(tmp_path):
    bad = tmp_path / "Z999.txt"
    bad.write_text("12\n13\nabc\n")
    with pytest.raises(RecordError, match=r"Z999\.txt: value 3 is 'abc'"):
        read_bonn_segment(bad)
    short = tmp_path / "Z998.txt"
    short.write_text("1\n" * 100)
    with pytest.raises(RecordError, match=r"Z998\.txt: 100 samples, expected 4097"):
        read_bonn_segment(short)


def test_a_bonn_segment_checked_against_the_list_alone_is_found_under_its_dataset_folder(tmp_path):
    # The list names files SET/FILE under the dataset folder; given only the list (no
    # root), the segment's grandparent is that folder (this was a TypeError).
    checksum_list = load_card("bonn").checksums_path
    segment = bonn_segment_paths()["A_Z"][0]
    assert read_bonn_segment(segment, checksum_list=checksum_list).signal.shape == (4097, 1)
    altered = tmp_path / "A_Z" / segment.name
    altered.parent.mkdir()
    altered.write_text(segment.read_text().replace("\n", "\n ", 1))
    with pytest.raises(ChecksumError, match=segment.name):
        read_bonn_segment(altered, checksum_list=checksum_list)


def test_eegmat_has_24_subjects_with_rest_and_task():
    subjects = eegmat_subjects()
    assert len(subjects) == 24
    assert subjects[0] == "Subject00" and subjects[-1] == "Subject34"


@pytest.mark.parametrize("subject", ["Subject00", "Subject04", "Subject34"])
def test_eegmat_durations_rates_and_units(subject):
    rest = read_eegmat(subject, "rest", channels=["Fp1", "Cz", "O2"])
    task = read_eegmat(subject, "task", channels=["Fp1", "Cz", "O2"])
    assert rest.fs_hz == task.fs_hz == 500.0
    assert rest.units == ("uV", "uV", "uV")
    assert rest.subject_id == task.subject_id == subject
    assert (rest.label, task.label) == ("rest", "task")
    # The task recording is 62 s; rest is 182 s except Subject04's 170 s.
    assert task.duration_s == 62.0
    assert rest.duration_s == (170.0 if subject == "Subject04" else 182.0)
    assert rest.signal.shape == (int(rest.duration_s * 500), 3)


def test_eegmat_all_channels_and_name_errors():
    record = read_eegmat("Subject01", "task")
    assert len(record.channel_names) == 21
    assert record.channel_names[:2] == ("Fp1", "Fp2") and record.channel_names[-1] == "ECG"
    with pytest.raises(ChannelError, match=r"Subject01_2\.edf: no channel 'Oz'"):
        read_eegmat("Subject01", "task", channels=["Oz"])
    with pytest.raises(RecordError, match="not an EEGMAT file name"):
        eegmat_label("subject1")


def test_eegmat_padded_tail_is_found_and_reported():
    # Every EEGMAT file ends with about 2 s of padding: ~1 s holding the last value (a
    # flat line, reported), then ~1 s of near-zero. Task recordings are 60 s of EEG.
    with pytest.warns(UserWarning, match=r"Subject00_2\.edf: flat samples in channels Cz, Fz at 60\.0"):
        record = read_eegmat("Subject00", "task", channels=["Fz", "Cz"])
    assert [i.channel for i in record.issues] == ["Cz", "Fz"]
    issue = record.issues[0]
    assert issue.kind == "flat"
    assert 60.0 <= issue.start / record.fs_hz < 60.1
    assert 0.9 < (issue.stop - issue.start) / record.fs_hz < 1.1
    assert np.ptp(record.signal[issue.start : issue.stop, 1]) == 0
