"""Read: recordings from disk into :class:`~pipeline.read.record.Record` objects.

``mitdb`` (WFDB via wfdb), ``bonn`` (text segments) and ``eegmat`` (EDF via pyedflib) are
imported lazily by their users so that the device side never pulls in wfdb or pyedflib;
``units`` and ``channels`` are standard-library only (the manifest checks use them).
``cards`` and ``splits`` hold what each dataset is and how it is split (by record, subject
or segment; never by window).
"""

__all__ = ["BeatAnnotations", "QualityIssue", "Record", "SignalSpec"]


def __getattr__(name):
    if name in __all__:
        from pipeline.read import record

        return getattr(record, name)
    raise AttributeError(f"module 'pipeline.read' has no attribute {name!r}")
