"""A plain-numpy float LSTM classifier: the ground truth every interpreter is held to.

Weights come from ``reference_float32.npz`` in the artifact folder (written by export,
loaded with ``allow_pickle=False``: data, never code). Keras conventions: kernel (C, 4U),
recurrent kernel (U, 4U), bias (4U,), gates in the order i, f, c, o; sigmoid recurrent
activation, tanh activation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lstm_sequence(
    x: np.ndarray,
    kernel: np.ndarray,
    recurrent: np.ndarray,
    bias: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    return_cells: bool = False,
):
    """Run one LSTM layer over x of shape (..., n_steps, n_in) from state h, c of shape (..., units).

    Leading dimensions are windows run side by side (export's state-range study runs
    thousands at once); the device runs one window, x of shape (n_steps, n_in).
    Returns (outputs (..., n_steps, units), h, c), float64, and with ``return_cells``
    also the cell state after every step, (..., n_steps, units).
    """
    units = recurrent.shape[0]
    xw = x.astype(np.float64) @ kernel + bias  # the input projection, all steps at once
    out = np.empty(x.shape[:-1] + (units,))
    cells = np.empty_like(out) if return_cells else None
    for t in range(x.shape[-2]):
        z = xw[..., t, :] + h @ recurrent
        i, f, g, o = z[..., :units], z[..., units : 2 * units], z[..., 2 * units : 3 * units], z[..., 3 * units :]
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out[..., t, :] = h
        if cells is not None:
            cells[..., t, :] = c
    return (out, h, c, cells) if return_cells else (out, h, c)


class NumpyLSTM:
    """The exported model in numpy: whole windows (``predict``) or chunks (``step``)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.layers = []
        i = 0
        while f"lstm_{i}_kernel" in weights:
            self.layers.append(
                tuple(np.asarray(weights[f"lstm_{i}_{k}"], np.float64) for k in ("kernel", "recurrent", "bias"))
            )
            i += 1
        self.dense = (weights["dense_kernel"].astype(np.float64), weights["dense_bias"].astype(np.float64))
        self.head = (weights["probs_kernel"].astype(np.float64), weights["probs_bias"].astype(np.float64))
        self.units = [layer[1].shape[0] for layer in self.layers]
        self.n_side = self.dense[0].shape[0] - self.units[-1]

    @classmethod
    def from_file(cls, path: str | Path) -> "NumpyLSTM":
        with np.load(path, allow_pickle=False) as data:
            return cls({k: data[k] for k in data.files})

    def _head(self, h: np.ndarray, side: np.ndarray | None) -> np.ndarray:
        if self.n_side and side is None:
            raise ValueError(f"this model takes {self.n_side} side features; none given")
        feats = h if side is None or not self.n_side else np.concatenate([h, side.astype(np.float64)])
        hidden = np.maximum(feats @ self.dense[0] + self.dense[1], 0.0)
        logits = hidden @ self.head[0] + self.head[1]
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def _run(self, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        seq, new_states = x, []
        for (kernel, recurrent, bias), k in zip(self.layers, range(0, 2 * len(self.layers), 2)):
            seq, h, c = lstm_sequence(seq, kernel, recurrent, bias, states[k], states[k + 1])
            new_states += [h, c]
        return seq[-1], new_states

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """{``signal``: (n, n_steps, C)[, ``side``: (n, n_side)]} -> (n, n_classes) float32."""
        out = []
        for i in range(len(inputs["signal"])):
            zero = [np.zeros(u) for u in self.units for _ in (0, 1)]
            h, _ = self._run(inputs["signal"][i], zero)
            out.append(self._head(h, inputs["side"][i] if self.n_side else None))
        return np.asarray(out, dtype=np.float32)

    def step(self, feed: dict) -> tuple[np.ndarray, list[np.ndarray]]:
        """One chunk: ``chunk`` (1, L, C), ``h_i``/``c_i`` (1, U)[, ``side``] -> probs, states."""
        states = [np.asarray(feed[f"{k}_{i}"][0], np.float64) for i in range(len(self.units)) for k in ("h", "c")]
        h, new = self._run(feed["chunk"][0], states)
        probs = self._head(h, feed["side"][0] if self.n_side else None)
        return probs[None].astype(np.float32), [s[None].astype(np.float32) for s in new]


def keras_weights(model) -> dict[str, np.ndarray]:
    """{name: array} of a trained classifier, in :class:`NumpyLSTM`'s layout (export side)."""
    out = {}
    for layer in model.layers:
        w = layer.get_weights()
        if layer.name.startswith("lstm_"):
            out[f"{layer.name}_kernel"], out[f"{layer.name}_recurrent"], out[f"{layer.name}_bias"] = w
        elif layer.name in ("dense", "probs"):
            out[f"{layer.name}_kernel"], out[f"{layer.name}_bias"] = w
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
