"""Where samples come from: every source states what it delivers (a
:class:`~pipeline.read.record.SignalSpec`: rate, channel labels, units) and yields chunks
of shape (n, n_channels) in those units; a session converts them or refuses.

``base``   a recording already in memory (files and dataset records), stdin (text or
           binary frames, with their declared rate, units and channels).
"""

from pipeline.runtime.sources.base import RecordSource, Source, SourceError, StdinSource

__all__ = ["RecordSource", "Source", "SourceError", "StdinSource"]
