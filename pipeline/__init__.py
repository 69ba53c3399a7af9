"""biosig-edge: LSTM models of ECG and EEG, from real recordings to small devices.

The package is laid out in the order data flows through it::

    read/        recordings -> Record (WFDB, Bonn text, EDF), checksums, dataset cards
    preprocess/  causal filters with explicit state, decimation, scaling (device side too)
    window/      ECG beat windows + RR features, EEG fixed windows
    splits.py    record- and subject-level train/validation/test splits

Importing ``pipeline`` imports nothing heavy: the device side (numpy, scipy and one
interpreter) must be able to import ``pipeline.preprocess`` and ``pipeline.window.rr``
without TensorFlow, wfdb or an EDF reader.
"""

__version__ = "0.1.0"
