"""Bad input gets a clear error naming the file and the problem, and loses nothing."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import wfdb

from pipeline.cli import main
from pipeline.errors import ChecksumError, DataUnavailableError, RecordError, SamplingRateError, SignalQualityError
from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.read.locate import dataset_dir
from pipeline.read.mitdb import read_wfdb


def _read(folder, record="100", **kw):
    return read_wfdb(folder / record, checksum_list=folder / "SHA256SUMS.txt", **kw)


def test_intact_copy_reads(mitdb_copy):
    assert _read(mitdb_copy).signal.shape == (650000, 2)


def test_altered_byte_is_refused_naming_the_file(mitdb_copy):
    path = mitdb_copy / "100.atr"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"100\.atr: sha256 .* altered or damaged"):
        _read(mitdb_copy)


def test_missing_annotation_file(mitdb_copy):
    (mitdb_copy / "100.atr").unlink()
    with pytest.raises(ChecksumError, match=r"100\.atr: file is missing"):
        _read(mitdb_copy)


def test_truncated_dat(mitdb_copy):
    path = mitdb_copy / "100.dat"
    path.write_bytes(path.read_bytes()[:1_000_000])
    with pytest.raises(RecordError, match=r"100\.dat: truncated: 1000000 bytes.*1950000 bytes"):
        _read(mitdb_copy)


def test_header_data_mismatch(mitdb_copy):
    hea = mitdb_copy / "100.hea"
    hea.write_text(hea.read_text().replace("100 2 360 650000", "100 2 360 600000", 1))
    with pytest.raises(RecordError, match=r"100\.dat: header/data mismatch: 1950000 bytes"):
        read_wfdb(mitdb_copy / "100")


def _write_record(folder, name, signal_mv, fs_hz=360):
    wfdb.wrsamp(
        name,
        fs=fs_hz,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=signal_mv[:, None],
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(folder),
    )
    return folder / name


@pytest.fixture
def real_ecg(data_dir):
    """Ten seconds of real MLII from record 100, in mV."""
    return read_wfdb(data_dir / "mitdb" / "100", channels=["MLII"], annotator=None).signal[:3600, 0].astype(np.float64)


def test_nan_samples_are_reported_with_file_and_time(tmp_path, real_ecg):
    x = real_ecg.copy()
    x[720:740] = np.nan
    path = _write_record(tmp_path, "nanrec", x)
    with pytest.warns(UserWarning, match=r"nanrec\.hea: nonfinite samples in channel MLII at 2\.000-2\.056 s"):
        record = read_wfdb(path, annotator=None)
    assert [(i.kind, i.start, i.stop) for i in record.issues] == [("nonfinite", 720, 740)]
    with pytest.raises(SignalQualityError, match=r"nanrec\.hea: nonfinite"):
        read_wfdb(path, annotator=None, strict=True)


def test_nan_does_not_poison_the_filter_after_the_gap(tmp_path, real_ecg):
    x = real_ecg.copy()
    x[720:740] = np.nan
    pre = Preprocessor(PreprocessSpec(360.0, highpass_hz=0.5, lowpass_hz=40.0), 1)
    y = pre.run(x[:, None], 360.0)
    assert np.isnan(y[720:740]).all()
    assert np.isfinite(y[:720]).all() and np.isfinite(y[740:]).all()


def test_flat_line_is_reported(tmp_path, real_ecg):
    x = real_ecg.copy()
    x[1000 : 1000 + 720] = x[1000]  # two seconds of lead-off
    path = _write_record(tmp_path, "flatrec", x)
    with pytest.warns(UserWarning, match=r"flatrec\.hea: flat samples in channel MLII at 2\.778-4\.778 s"):
        record = read_wfdb(path, annotator=None)
    (issue,) = record.issues
    assert (issue.kind, issue.start, issue.stop) == ("flat", 1000, 1720)


def test_wrong_sampling_rate_is_refused_not_misused(tmp_path, real_ecg):
    path = _write_record(tmp_path, "rec250", real_ecg[:2500], fs_hz=250)
    record = read_wfdb(path, annotator=None)
    pre = Preprocessor(PreprocessSpec(360.0, highpass_hz=0.5, lowpass_hz=40.0), 1)
    with pytest.raises(SamplingRateError, match=r"rec250\.hea: sampled at 250 Hz, .* made for 360 Hz"):
        pre.run(record.signal, record.fs_hz, record.source)


def test_explicit_data_dir_without_the_dataset_names_where_it_looked(tmp_path):
    with pytest.raises(
        DataUnavailableError, match=rf"dataset 'mitdb' not found; looked in: {tmp_path}/mitdb \(--data-dir\)"
    ):
        dataset_dir("mitdb", tmp_path)


def test_cli_exits_2_with_one_line_message_and_no_traceback(tmp_path, capsys):
    assert main(["data", "summary", "mitdb", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biosig-edge: error: dataset 'mitdb' not found")
    assert "Traceback" not in err


def test_cli_check_names_the_altered_file_and_exits_1(tmp_path, data_dir, capsys):
    copy = tmp_path / "mitdb"
    shutil.copytree(data_dir / "mitdb", copy)
    os.chmod(copy / "114.hea", 0o644)
    (copy / "114.hea").write_text((copy / "114.hea").read_text() + "# edited\n")
    (copy / "231.atr").unlink()
    assert main(["data", "check", "mitdb", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mitdb: 2 problem(s)" in out
    assert "114.hea: sha256" in out and "231.atr: file is missing" in out


def _online(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@pytest.mark.skipif(_online("physionet.org"), reason="online: the offline message cannot be shown here")
def test_download_offline_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOSIG_EDGE_CACHE", str(tmp_path))
    assert main(["data", "fetch", "eegmat"]) == 2
    err = capsys.readouterr().err
    assert "could not download 'eegmat' from https://physionet.org/content/eegmat/1.0.0/" in err
    assert "offline" in err and "Traceback" not in err


def test_bonn_fetch_without_archives_says_where_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIOSIG_EDGE_CACHE", str(tmp_path))
    assert main(["data", "fetch", "bonn"]) == 2
    err = capsys.readouterr().err
    assert "'bonn' archives ['Z.zip', 'O.zip', 'N.zip', 'F.zip', 'S.zip'] are not in" in err


def test_readers_never_modify_the_shared_data(data_dir):
    # Hash a record, read it through every path that touches it, hash again.
    files = [data_dir / "mitdb" / f"100.{ext}" for ext in ("hea", "dat", "atr")]
    before = [(hashlib.sha256(f.read_bytes()).hexdigest(), os.stat(f).st_mtime_ns) for f in files]
    read_wfdb(data_dir / "mitdb" / "100", checksum_list=None)
    main(["data", "check", "mitdb"])
    after = [(hashlib.sha256(f.read_bytes()).hexdigest(), os.stat(f).st_mtime_ns) for f in files]
    assert before == after
    assert not list((data_dir / "mitdb").glob("*.partial"))


def test_an_npy_header_declaring_more_than_its_file_holds_is_refused_before_allocating(tmp_path):
    # Reliability probe N11: a header shape of (10**12, 2) over a 160-byte body made numpy
    # allocate 14.6 TiB (MemoryError traceback). The shape is held against the file's size.
    from pipeline.read.files import read_recording

    np.save(tmp_path / "small.npy", np.zeros((10, 2)))
    header = (tmp_path / "small.npy").read_bytes()
    for shape in ("(1000000000000, 2)", "(1000000000, 2)", "(11, 2)"):
        (tmp_path / "big.npy").write_bytes(header.replace(b"'shape': (10, 2)", f"'shape': {shape}".encode()))
        with pytest.raises(RecordError, match=rf"big\.npy: its header declares an array of shape {re.escape(shape)}"):
            read_recording(tmp_path / "big.npy", fs_hz=360, units="mV")
    assert read_recording(tmp_path / "small.npy", fs_hz=360, units="mV").signal.shape == (10, 2)


def test_a_closed_stdin_is_refused_in_one_line(tmp_path):
    # Reliability probe N7: `biosig-edge stream ART - ... <&-` ended in an AttributeError.
    from synthetic_artifact import make_folder

    art = make_folder(tmp_path / "art")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "stream", str(art), "-", "--fs", "360", "--units", "mV"],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),  # as the shell's <&-
    )
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "biosig-edge: error: stdin is closed: give the samples on stdin ('< FILE' or a pipe), or a file as INPUT"
    ]


def test_a_labels_csv_with_a_byte_order_mark_is_read(tmp_path, data_dir):
    # Reliability probe N12: a spreadsheet's labels.csv began with '\ufefffile', and its
    # header row was taken for a recording labelled 'label'.
    from pipeline.validate.heldout import user_record_ids

    for name in ("S001.txt", "Z001.txt"):
        shutil.copy(data_dir / "bonn" / ("E_S" if name[0] == "S" else "A_Z") / name, tmp_path / name)
    (tmp_path / "labels.csv").write_bytes(b"\xef\xbb\xbffile,label\r\nS001.txt,E_S\r\nZ001.txt,A_Z\r\n")
    from synthetic_artifact import manifest_dict

    from pipeline.manifest import Manifest, seal

    manifest = Manifest.from_dict(seal(manifest_dict("eeg-windows")))  # classes A_Z ... E_S
    assert user_record_ids(manifest, tmp_path) == ["S001.txt", "Z001.txt"]
