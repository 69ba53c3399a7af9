"""Feeding a signal to a streaming object in chunks of given sizes (shared by tests)."""


def push_in_chunks(push, x, sizes: list[int]) -> list:
    """Call ``push`` on consecutive slices of x, cycling through ``sizes``; concatenate the results."""
    out, pos, k = [], 0, 0
    while pos < len(x):
        size = sizes[k % len(sizes)]
        out += push(x[pos : pos + size])
        pos, k = pos + size, k + 1
    return out


def decide_whole(session, x) -> list:
    """Every event a session gives for the recording x, as ``biosig-edge stream`` decides it:
    pushed whole, then flushed (the beats still waiting for their quality lag at the end)."""
    return session.push(x) + session.flush()


def stream_stdin(python, folder, text: str, fs_hz, units: str, *options: str):
    """``biosig-edge stream FOLDER -`` run by ``python`` on ``text`` (rate and units declared,
    as stdin must): the finished process, stdout and stderr captured as text."""
    import subprocess

    cli = [python, "-m", "pipeline.cli", "stream", str(folder), "-", "--fs", str(fs_hz), "--units", units, *options]
    return subprocess.run(cli, input=text, capture_output=True, text=True)
