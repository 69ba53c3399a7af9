"""Feeding a signal to a streaming object in chunks of given sizes (shared by tests)."""


def push_in_chunks(push, x, sizes: list[int]) -> list:
    """Call ``push`` on consecutive slices of x, cycling through ``sizes``; concatenate the results."""
    out, pos, k = [], 0, 0
    while pos < len(x):
        size = sizes[k % len(sizes)]
        out += push(x[pos : pos + size])
        pos, k = pos + size, k + 1
    return out
