"""Preprocess: causal filters with explicit state, decimation, scaling.

Written once and used both offline (training windows) and on the device (streaming), so a
recording fed in one piece or in chunks of any size gives bit-identical numbers. Needs
numpy and scipy's compiled SOS kernel only (see ``iir``; no TensorFlow, not even
``scipy.signal``).
"""

from pipeline.preprocess.chain import Preprocessor, PreprocessSpec
from pipeline.preprocess.filters import BandPower, CausalFilter, Decimator, RunningNormaliser, design_sos

__all__ = [
    "BandPower",
    "CausalFilter",
    "Decimator",
    "PreprocessSpec",
    "Preprocessor",
    "RunningNormaliser",
    "design_sos",
]
