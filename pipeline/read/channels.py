"""Which channel of an input feeds which channel of a model: by name, with aliases and an
explicit mapping, or a clear refusal listing what the input has and what the model needs.

A model's channels are written as in its config: ``"MLII"``, or alternatives taken in
order, ``"V1|V2|V4|V5"`` (MIT-BIH's second lead varies by record). Each has aliases (the
dataset card's ``[channel_aliases]``, carried into the manifest): names under which a
recording's lead is taken to be the one the model learned (``ECG1`` for MLII on a
two-lead Holter). Anything else needs a mapping, ``MLII=ECG1,V1=ECG2``: the user's
declaration. Labels are compared after normalisation (case, blanks, an ``EEG``/``ECG``
type prefix, a ``-REF``/``-LE``/``-AVG`` reference suffix; 10-20 names T3/T7, T4/T8,
T5/P7, T6/P8 are the same electrode).

Device side: standard library only.
"""

from __future__ import annotations

import re

from pipeline.errors import ChannelError

#: The 10-20 system's old and new names of the same electrode.
_TEN_TWENTY = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}


def normalise_label(label: str) -> str:
    """``'EEG Fp1-REF'`` -> ``'FP1'``; ``'ecg 1'`` -> ``'ECG1'``."""
    s = str(label).strip().upper()
    s = re.sub(r"^(EEG|ECG|EKG)[\s_:]+(?=\S)", "", s)
    s = re.sub(r"[-_](REF|LE|AVG|AR)$", "", s)
    s = re.sub(r"[\s_]+", "", s)
    return _TEN_TWENTY.get(s, s)


def parse_mapping(text: str | None) -> dict[str, str]:
    """``'MLII=ECG1,V1=ECG2'`` -> {``'MLII'``: ``'ECG1'``, ``'V1'``: ``'ECG2'``}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        model, sep, source = part.partition("=")
        if not sep or not model.strip() or not source.strip():
            raise ChannelError(f"--channels: '{part}' is not MODEL=INPUT (e.g. MLII=ECG1,V1=ECG2)")
        if model.strip() in out:
            raise ChannelError(f"--channels: '{model.strip()}' mapped twice")
        out[model.strip()] = source.strip()
    return out


def accepted_names(model_channel: str, aliases: dict[str, list[str]] | None = None) -> list[str]:
    """Every name under which an input channel is taken for ``model_channel``, in order."""
    names = [model_channel, *model_channel.split("|")]
    for alternative in model_channel.split("|"):
        names += (aliases or {}).get(alternative, [])
    names += (aliases or {}).get(model_channel, [])
    return list(dict.fromkeys(names))


def resolve_channels(
    model_channels: list[str],
    input_channels: list[str],
    aliases: dict[str, list[str]] | None = None,
    mapping: dict[str, str] | None = None,
    where: str = "input",
) -> list[int]:
    """Index into ``input_channels`` of each model channel, in the model's order.

    Parameters
    ----------
    model_channels : the model's channels (``["MLII", "V1|V2|V4|V5"]``)
    input_channels : the input's channel labels, in its column order
    aliases : {model channel or alternative: [names]} from the manifest
    mapping : {model channel (or one of its alternatives or aliases): input label}

    Raises :class:`ChannelError` naming ``where``, what it has and what the model needs.
    """
    have = [normalise_label(c) for c in input_channels]
    mapping = dict(mapping or {})
    used_keys, out = set(), []
    for channel in model_channels:
        names = accepted_names(channel, aliases)
        keys = [k for k in mapping if normalise_label(k) in {normalise_label(n) for n in names}]
        if len(keys) > 1:
            raise ChannelError(f"--channels maps the model's '{channel}' twice ({', '.join(keys)})")
        if keys:
            used_keys.add(keys[0])
            wanted = normalise_label(mapping[keys[0]])
            if wanted not in have:
                raise ChannelError(
                    f"{where}: --channels maps the model's '{channel}' to '{mapping[keys[0]]}', "
                    f"which {where} does not have (channels: {list(input_channels)})"
                )
            out.append(have.index(wanted))
            continue
        found = next((have.index(normalise_label(n)) for n in names if normalise_label(n) in have), None)
        if found is None:
            needed = "; ".join(f"'{c}' (as {', '.join(accepted_names(c, aliases))})" for c in model_channels)
            raise ChannelError(
                f"{where}: no channel for the model's '{channel}'; {where} has {list(input_channels)}, "
                f"the model needs {needed}; map them with --channels "
                + ",".join(f"{c.split('|')[0]}=NAME" for c in model_channels)
            )
        out.append(found)
    unused = sorted(set(mapping) - used_keys)
    if unused:
        raise ChannelError(
            f"--channels names {unused}, which are not channels of the model ({', '.join(model_channels)})"
        )
    if len(set(out)) != len(out):
        taken = [input_channels[i] for i in out]
        raise ChannelError(
            f"{where}: one input channel would feed two model channels ({taken}); map them with --channels"
        )
    return out
