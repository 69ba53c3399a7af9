"""Physical units of a signal, and the factor that converts one into another.

A model is trained on one unit (mV for ECG, uV for EEG: the manifest's ``input_units``);
every input path converts to it or refuses. Device side: standard library only.
"""

from __future__ import annotations

from pipeline.errors import BiosigError


class UnitError(BiosigError):
    """A signal whose units are unknown, uncalibrated or not a voltage."""


#: Volts per unit.
_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "nV": 1e-9}

#: Spellings met in WFDB headers, EDF headers and users' options -> canonical name.
_ALIASES = {
    "v": "V",
    "volt": "V",
    "volts": "V",
    "mv": "mV",
    "millivolt": "mV",
    "millivolts": "mV",
    "uv": "uV",
    "µv": "uV",
    "μv": "uV",
    "microvolt": "uV",
    "microvolts": "uV",
    "mcv": "uV",
    "nv": "nV",
    "nanovolt": "nV",
    "nanovolts": "nV",
}

#: Names that say a signal is in raw converter counts: meaningless without a gain.
UNCALIBRATED = frozenset({"", "adu", "adc", "counts", "count", "nu", "none", "unknown", "?"})


def canonical_unit(unit: str, where: str = "input") -> str:
    """``'µV'``, ``'uv'``, ``'microvolts'`` -> ``'uV'``; refuse anything that is not a voltage."""
    key = str(unit).strip().lower()
    if key in UNCALIBRATED:
        raise UnitError(
            f"{where}: units {unit!r} are uncalibrated converter counts; give the gain "
            f"(--gain, counts per unit) and the units (--units mV or uV)"
        )
    if key not in _ALIASES:
        raise UnitError(f"{where}: unknown units {unit!r} (known: V, mV, uV, nV)")
    return _ALIASES[key]


def unit_scale(from_unit: str, to_unit: str, where: str = "input") -> float:
    """The factor that turns values in ``from_unit`` into ``to_unit`` (mV -> uV: 1000)."""
    return _VOLTS[canonical_unit(from_unit, where)] / _VOLTS[canonical_unit(to_unit, "model")]
