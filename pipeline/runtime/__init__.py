"""Runtime: the device side. Needs numpy, scipy's compiled IIR kernel and one interpreter;
importing any module here never imports TensorFlow, wfdb, pyedflib or ``scipy.signal``
(tests/test_layers.py checks ``sys.modules``), and nothing here imports ``train`` or
``export``. Host tools that drive it (benchmarks, profiles) live in ``pipeline.tools``.

``session``    ``push(samples) -> events``: input checks, resampling, the causal filter,
               ECG beats (QRS, RR features, template) and EEG windows, one decision each.
``backends``   LiteRT, ONNX Runtime and the numpy float LSTM behind one interface.
``c_backend``  the generated C as a CPU shared library (``c_float32``, ``c_int8``).
``reference``  the numpy float LSTM itself, the ground truth the interpreters are held to.
``qrs``        streaming QRS detection (Pan & Tompkins) for chunks.
``quality``    signal quality a device can see: a noise index per decision, amplitude checks.
``sources/``   where samples come from: recordings, stdin, LSL, BrainFlow, serial.
``sinks``      where events go: JSON lines (stdout or a rotating file), an LSL outlet.
``live``       runs a session on a live source: timestamps, stalls, lost sources, latency.
``measure``    streams recordings through one artifact in a child process and measures it
               (decisions, latency, throughput, peak memory): what validate and the
               benchmarks run, so that only device code is counted.
"""
