"""Window: cut preprocessed recordings into model inputs that know where they came from.

``rr`` (causal RR-interval features) is shared with the streaming runtime; ``ecg`` and
``eeg`` build training/evaluation windows offline with the same preprocessing chain.
"""
