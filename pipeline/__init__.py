"""biosig-edge: LSTM models of ECG and EEG, from real recordings to small devices.

The package is laid out in the order data flows through it; each folder is a room, and a
room imports only rooms below it (CONTRIBUTING.md states the order; tests/test_layers.py
holds it)::

    read/        recordings -> Record (WFDB, Bonn text, EDF, CSV/NPY), units, channels,
                 dataset adapters and cards, checksums, train/validation/test splits
    preprocess/  causal filters with explicit state, resampling, decimation, scaling
    window/      ECG beat windows + RR features + beat template, EEG fixed windows
    manifest.py  the artifact contract between training and the device (typed, schema-checked)
    train/       Keras LSTM classifiers: configs, data, fitting, sweeps
    export/      a run -> a sealed (optionally signed) artifact folder: TFLite, ONNX, C
    runtime/     the device side: sessions, backends, QRS, signal quality, sources, sinks
    validate/    every artifact streamed over the held-out split, scored, held to budgets
    tools/       host tools run by hand: benchmarks, profiles, bit-equality proofs
    targets/     the device side on aarch64 under emulation
    cli/         ``biosig-edge``: one module per command, shared options in common.py
    errors.py, folders.py, metrics.py, readme.py, cluster.py (Ray): shared by every room

``firmware_export/`` (beside this package) holds the C runtime and its generator.

Importing ``pipeline`` imports nothing heavy: the device side (numpy, scipy's compiled
IIR kernel and one interpreter) imports ``pipeline.runtime`` and ``pipeline.preprocess``
without TensorFlow, wfdb or an EDF reader.
"""

__version__ = "0.1.0"
