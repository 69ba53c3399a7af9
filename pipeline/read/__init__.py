"""Read: recordings from disk into :class:`~pipeline.read.record.Record` objects.

``mitdb`` (WFDB via wfdb), ``bonn`` (text segments) and ``eegmat`` (EDF via pyedflib) are
imported lazily by their users so that the device side never pulls in wfdb or pyedflib.
"""

from pipeline.read.record import BeatAnnotations, QualityIssue, Record

__all__ = ["BeatAnnotations", "QualityIssue", "Record"]
