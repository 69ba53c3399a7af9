"""MIT-BIH reader on the real database."""

from collections import Counter

import numpy as np
import pytest

from pipeline.errors import ChannelError, RecordError
from pipeline.read.cards import load_card
from pipeline.read.mitdb import NON_BEAT_SYMBOLS, map_beats, read_mitdb, read_mitdb_beats


@pytest.mark.parametrize("side", ["DS1", "DS2"])
def test_beat_counts_per_aami_class_equal_the_data_readme(side):
    card = load_card("mitdb")
    counts = Counter()
    for record in card.splits[side]:
        counts.update(read_mitdb_beats(record).aami.tolist())
    expected = card.raw["expected_counts"][side]
    assert {c: counts[c] for c in "NSVF"} == expected
    # Q is too rare to learn, but it is read: 8 in DS1 and 7 in DS2 (de Chazal 2004).
    assert counts["Q"] == {"DS1": 8, "DS2": 7}[side]


def test_record_100_in_physical_units():
    record = read_mitdb("100")
    assert record.signal.shape == (650000, 2)
    assert record.signal.dtype == np.float32
    assert record.fs_hz == 360.0
    assert record.channel_names == ("MLII", "V5")
    assert record.units == ("mV", "mV")
    # wfdb: (digital - baseline) / gain; the first MLII sample is 995 with baseline 1024, gain 200.
    assert record.signal[0, 0] == pytest.approx((995 - 1024) / 200)
    assert len(record.beats.sample) == 2273
    assert record.issues == ()


def test_channels_are_selected_by_name_not_position():
    # Record 114 stores V5 first and MLII second.
    full = read_mitdb("114")
    assert full.channel_names == ("V5", "MLII")
    picked = read_mitdb("114", channels=["MLII", "V1|V2|V4|V5"])
    assert picked.channel_names == ("MLII", "V5")
    np.testing.assert_array_equal(picked.signal[:, 0], full.signal[:, 1])


def test_unknown_channel_names_the_file_and_the_channels():
    with pytest.raises(ChannelError, match=r"100\.hea: no channel 'V9'.*MLII"):
        read_mitdb("100", channels=["V9"])


def test_not_a_record():
    with pytest.raises(RecordError, match="'999' is not an MIT-BIH record"):
        read_mitdb("999")


def test_non_beats_are_dropped_and_unknown_symbols_reported():
    beats = map_beats(np.array([10, 20, 30, 40, 50]), ["N", "+", "V", "?", "~"], {"N": "N", "V": "V"})
    assert beats.sample.tolist() == [10, 30]
    assert beats.aami.tolist() == ["N", "V"]
    assert beats.unknown_symbols == {"?": 1}
    assert "+" in NON_BEAT_SYMBOLS and "~" in NON_BEAT_SYMBOLS


def test_the_whole_database_has_no_unknown_symbols():
    card = load_card("mitdb")
    unknown = Counter()
    for record in card.raw["records"]:
        unknown.update(read_mitdb_beats(record).unknown_symbols)
    assert unknown == Counter()


def test_a_bare_record_id_with_no_dataset_to_default_to_is_refused_asking_for_one():
    from pipeline.read.datasets import dataset_record

    assert dataset_record("100", "mitdb").record_id == "100"
    with pytest.raises(RecordError, match=r"'100': which dataset\? give it as DATASET:ID"):
        dataset_record("100")
