"""The int8 build's arithmetic in numpy, operation for operation in float32.

``runtime/bse_lstm.c`` in its int8 precision quantises every input vector of an LSTM
matrix to int8 (one symmetric scale per vector and step), multiplies by int8 weights (one
scale per output row) in exact integer sums, takes the gates from a sigmoid table, and
runs the dense head in float. This module does the same operations in the same order with
numpy's float32 (which never fuses a multiply and an add), over a batch of windows at
once, so that:

- the tests hold the compiled C to it bit for bit (tests/test_c_runtime.py), an
  independent implementation of the same scheme;
- a change of the scheme can be measured on real held-out windows against the float
  reference before it is written in C: :class:`Int8Model` takes the variants (state at 16
  bits, exact activations, an int8 head) and :func:`state_error` gives the per-step h and c
  error of each layer against the float reference.

    python -m pipeline.tools.int8_error ARTIFACT_DIR      # where the int8 build loses float's decisions

Shapes: ``x`` (n, n_steps, n_channels) float32, states (n, units) float32 per layer.
"""

from __future__ import annotations

import numpy as np

from firmware_export.c_model import (
    SIGMOID_TABLE_N,
    SIGMOID_TABLE_RANGE,
    CModelSpec,
    padded,
    quantise_rows,
    sigmoid_table,
)

F = np.float32


def expf(x: np.ndarray) -> np.ndarray:
    """``bse_lstm_expf``: Cephes' expf in float32, operation for operation."""
    x = np.asarray(x, F)
    x = np.where(x > F(88.0), F(88.0), x)
    x = np.where(x < F(-87.0), F(-87.0), x)
    n = x * F(1.44269504088896341)
    n = np.where(n >= F(0.0), n + F(0.5), n - F(0.5)).astype(np.int32).astype(F)
    x = x - n * F(0.693359375)
    x = x - n * F(-2.12194440e-4)
    z = x * x
    p = F(1.9875691500e-4) * x + F(1.3981999507e-3)
    p = p * x + F(8.3334519073e-3)
    p = p * x + F(4.1665795894e-2)
    p = p * x + F(1.6666665459e-1)
    p = p * x + F(5.0000001201e-1)
    z = (p * z + x) + F(1.0)
    two_n = ((n.astype(np.int32) + 127) << 23).astype(np.int32).view(F)
    return z * two_n


class Table:
    """``bse_lstm_table_t``: sigmoid by linear interpolation in a table."""

    def __init__(self, values: np.ndarray, x_min: float, x_max: float):
        self.values = np.asarray(values, F)
        self.x_min, self.x_max = F(x_min), F(x_max)
        self.per_unit = F((len(values) - 1) / (x_max - x_min))

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, F)
        u = (x - self.x_min) * self.per_unit
        inside = (x > self.x_min) & (x < self.x_max)
        i = np.where(inside, u, F(0.0)).astype(np.int32)
        u = u - i.astype(F)
        t = self.values
        y = t[i] + u * (t[np.minimum(i + 1, len(t) - 1)] - t[i])
        return np.where(x <= self.x_min, t[0], np.where(x >= self.x_max, t[-1], y))

    def tanh(self, x: np.ndarray) -> np.ndarray:
        return F(2.0) * self.sigmoid(F(2.0) * np.asarray(x, F)) - F(1.0)


class ExactActivations:
    """sigmoid and tanh in float64, rounded to float32 (a variant: no table)."""

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))).astype(F)

    @staticmethod
    def tanh(x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, np.float64)).astype(F)


def quantise(v: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``bse_lstm_quantise`` per row of v (n, k) float32 -> q (n, k) int32, scale (n,) float32
    (symmetric, [-(2^(bits-1) - 1), 2^(bits-1) - 1]; the C's is bits = 8)."""
    q_max = F(2 ** (bits - 1) - 1)
    v = np.asarray(v, F)
    peak = np.abs(v).max(axis=1)
    zero = peak == F(0.0)
    inv = q_max / np.where(zero, F(1.0), peak)
    r = v * inv[:, None]
    k = np.where(r >= F(0.0), r + F(0.5), r - F(0.5)).astype(np.int32)
    q = np.clip(k, -int(q_max), int(q_max))
    q[zero] = 0
    return q, np.where(zero, F(1.0), peak / q_max)


class Matrix:
    """``bse_lstm_matrix_t`` in int8: a Keras kernel (n_in, n_out), one scale per output;
    its input vectors quantised to ``input_bits`` (the C's: 8)."""

    def __init__(self, kernel: np.ndarray, input_bits: int = 8):
        q, self.scale = quantise_rows(np.asarray(kernel, F).T)  # (n_out, n_in), (n_out,)
        self.q = q.astype(np.int64)
        self.n_in_padded = padded(kernel.shape[0])
        self.input_bits = input_bits

    def add_to(self, out: np.ndarray, v: np.ndarray) -> np.ndarray:
        """out (n, n_out) + W v, as ``matvec_q8``: returns the new out (float32)."""
        q, scale_v = quantise(v, self.input_bits)
        dot = (q.astype(np.int64) @ self.q.T).astype(F)  # exact integer sums, then rounded
        return out + (self.scale[None, :] * scale_v[:, None]) * dot


class FloatMatrix:
    """``bse_lstm_matrix_t`` with float weights: each output's sum from 0 over i = 0, 1, ...
    in float32, then added to out (``matvec_f32``, either loop form)."""

    def __init__(self, kernel: np.ndarray):
        self.w = np.asarray(kernel, F)  # (n_in, n_out)

    def add_to(self, out: np.ndarray, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, F)
        acc = np.zeros((len(v), self.w.shape[1]), F)
        for i in range(self.w.shape[0]):
            acc = acc + self.w[i][None, :] * v[:, i : i + 1]
        return out + acc


class Int8Model:
    """A generated model's int8 build (``bse_int8.c``) in numpy.

    The defaults are the C's scheme; the variants measure what each part costs:
    ``state_bits`` (the recurrent input h quantised to 16 bits instead of 8),
    ``exact_activations`` (no sigmoid table), ``int8_head`` (the dense head in int8, as
    the int8 build had it before)."""

    def __init__(self, spec: CModelSpec, state_bits: int = 8, exact_activations: bool = False, int8_head: bool = False):
        self.layers = [(Matrix(k), Matrix(r, state_bits), np.asarray(b, F)) for k, r, b in spec.lstm]
        self.units = spec.units
        head = Matrix if int8_head else FloatMatrix
        self.dense = (head(spec.dense[0]), np.asarray(spec.dense[1], F))
        self.head_ = (head(spec.head[0]), np.asarray(spec.head[1], F))
        self.n_side = spec.n_side
        self.table = (
            ExactActivations()
            if exact_activations
            else Table(sigmoid_table(), -SIGMOID_TABLE_RANGE, SIGMOID_TABLE_RANGE)
        )
        assert isinstance(self.table, ExactActivations) or len(self.table.values) == SIGMOID_TABLE_N

    def zero_state(self, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [np.zeros((n, u), F) for u in self.units], [np.zeros((n, u), F) for u in self.units]

    def layer_step(self, k: int, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step of layer k: input x (n, n_in), state h, c (n, U) -> new h, c."""
        wx, wh, bias = self.layers[k]
        u = self.units[k]
        z = np.broadcast_to(bias, (len(x), 4 * u)).astype(F)
        z = wx.add_to(z, x)
        z = wh.add_to(z, h)
        t = self.table
        ig, fg, gg, og = (
            t.sigmoid(z[:, :u]),
            t.sigmoid(z[:, u : 2 * u]),
            t.tanh(z[:, 2 * u : 3 * u]),
            t.sigmoid(z[:, 3 * u :]),
        )
        c = fg * c + ig * gg
        return og * t.tanh(c), c

    def run(self, x: np.ndarray, h: list | None = None, c: list | None = None):
        """Steps over x (n, n_steps, C) from state h, c (default zero) -> h, c lists."""
        x = np.asarray(x, F)
        if h is None:
            h, c = self.zero_state(len(x))
        if c is None:
            raise ValueError("give both states, h and c, or neither")
        h, c = list(h), list(c)
        for t in range(x.shape[1]):
            v = x[:, t]
            for k in range(len(self.layers)):
                h[k], c[k] = self.layer_step(k, v, h[k], c[k])
                v = h[k]
        return h, c

    def head(self, h_last: np.ndarray, side: np.ndarray | None) -> np.ndarray:
        """Dense(relu) + Dense + softmax as ``bse_lstm_decision`` -> probs (n, K) float32."""
        v = h_last if not self.n_side else np.concatenate([h_last, np.asarray(side, F)], axis=1)
        w, b = self.dense
        hidden = w.add_to(np.broadcast_to(b, (len(v), len(b))).astype(F), v)
        hidden = np.where(hidden < F(0.0), F(0.0), hidden)
        w, b = self.head_
        logits = w.add_to(np.broadcast_to(b, (len(v), len(b))).astype(F), hidden)
        e = expf(logits - logits.max(axis=1, keepdims=True))
        total = np.zeros(len(e), F)
        for j in range(e.shape[1]):  # in order, as the C sums
            total = total + e[:, j]
        return e / total[:, None]

    def predict(self, signal: np.ndarray, side: np.ndarray | None = None) -> np.ndarray:
        h, _ = self.run(signal)
        return self.head(h[-1], side)


def state_error(model: Int8Model, spec: CModelSpec, x: np.ndarray) -> list[dict]:
    """Per layer, the int8 build's h and c against the float64 reference step by step over
    windows x (n, n_steps, C), both from zero state and each on its own trajectory (the
    error carried, as on a device): {layer, h_mean, h_max, c_mean, c_max} arrays (n_steps,)
    of abs errors over windows and units, and the float reference's mean |h| and |c|."""
    n, n_steps, _ = x.shape
    h, c = model.zero_state(n)
    ref_h = [np.zeros((n, u)) for u in spec.units]
    ref_c = [np.zeros((n, u)) for u in spec.units]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    out = [{k: np.zeros(n_steps) for k in ("h_mean", "h_max", "c_mean", "c_max", "h_ref", "c_ref")} for _ in spec.units]
    for t in range(n_steps):
        v, v_ref = np.asarray(x[:, t], F), x[:, t].astype(np.float64)
        for k, (kernel, recurrent, bias) in enumerate(spec.lstm):
            h[k], c[k] = model.layer_step(k, v, h[k], c[k])
            u = spec.units[k]
            z = v_ref @ kernel.astype(np.float64) + ref_h[k] @ recurrent.astype(np.float64) + bias
            ref_c[k] = sig(z[:, u : 2 * u]) * ref_c[k] + sig(z[:, :u]) * np.tanh(z[:, 2 * u : 3 * u])
            ref_h[k] = sig(z[:, 3 * u :]) * np.tanh(ref_c[k])
            v, v_ref = h[k], ref_h[k]
            dh, dc = np.abs(h[k] - ref_h[k]), np.abs(c[k] - ref_c[k])
            row = out[k]
            row["h_mean"][t], row["h_max"][t], row["c_mean"][t], row["c_max"][t] = (
                dh.mean(),
                dh.max(),
                dc.mean(),
                dc.max(),
            )
            row["h_ref"][t], row["c_ref"][t] = np.abs(ref_h[k]).mean(), np.abs(ref_c[k]).mean()
    return [{"layer": k, **row} for k, row in enumerate(out)]
