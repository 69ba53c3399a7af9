"""Exceptions with messages that name the file and the problem.

Every error a user can cause with bad input derives from :class:`BiosigError`, so the
command line can print the message (without a traceback) and exit with code 2.
"""

from __future__ import annotations


class BiosigError(Exception):
    """Base class: a problem with the user's input, data or configuration."""


class DataUnavailableError(BiosigError):
    """A dataset is not where it was looked for and cannot be downloaded."""


class ChecksumError(BiosigError):
    """A file is missing or its sha256 does not match the dataset's checksum list."""


class RecordError(BiosigError):
    """A recording cannot be read as it claims to be (truncated, header mismatch, ...)."""


class SignalQualityError(BiosigError):
    """A recording holds samples a model must not see (NaN/inf, flat line) in strict mode."""


class ChannelError(BiosigError):
    """A requested channel is not in the recording."""


class SamplingRateError(BiosigError):
    """A recording's sampling rate is not one the processing chain was made for."""


class ConfigError(BiosigError):
    """A configuration or card file has an unknown key, a missing key or a wrong type."""
