"""Sentences one per line, read in batches, so that input of any length streams in bounded memory.

Lines are read as bytes and decoded here, one at a time. A line that is not
valid UTF-8 is decoded with replacement characters (U+FFFD) and carries a
``problem`` naming the first bad byte and its column, so that one bad line
neither fails the others nor shifts the output against the input: every
input line gives exactly one :class:`Line`. (The exported graph itself takes
any bytes; the replacement only keeps the text a valid ``str``.)

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Sentences per batch when neither the user nor the export says otherwise:
# the max_batch_size that ``serving-config`` writes and the serving client sends.
DEFAULT_BATCH_SIZE = 32


@dataclass
class Line:
    """One input line: its 1-based number, its text, and why the text differs from the input (or None)."""

    number: int
    text: str
    problem: str | None = None


def decode_line(data: bytes, number: int) -> Line:
    """``data`` (one line, its line end already cut) as a :class:`Line`.

    Invalid UTF-8 becomes U+FFFD; ``problem`` then names the first bad byte
    and its 1-based column in characters, e.g. ``not valid UTF-8 (byte 0xff
    at column 3)``.
    """
    try:
        return Line(number, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        column = len(data[: err.start].decode("utf-8")) + 1  # everything before the first bad byte decodes
        return Line(
            number,
            data.decode("utf-8", errors="replace"),
            f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column {column})",
        )


def _cut_line_end(data: bytes) -> bytes:
    # As evaluation.read_lines: only the line end is cut ("\n", then one "\r"), nothing inside the line.
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    return data


def read_lines(
    stream: BinaryIO | Iterable[bytes], name: str = "standard input", max_line_bytes: int | None = None
) -> Iterator[Line]:
    """The lines of a binary stream (or of an iterable of byte strings), decoded one at a time.

    A line longer than ``max_line_bytes`` (default
    :data:`translate.corpora.MAX_LINE_BYTES`, 1 MiB) is refused as soon as
    that many bytes are read, so a stream without line breaks (``/dev/zero``)
    fails at once instead of filling memory.

    Raises:
        ValueError: when reading fails or a line is too long, naming ``name`` and the line.
    """
    from translate.corpora import MAX_LINE_BYTES

    limit = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    readline = getattr(stream, "readline", None)
    iterator = iter(lambda: readline(limit + 1), b"") if readline else iter(stream)
    number = 0
    while True:
        try:
            data = next(iterator)
        except StopIteration:
            return
        except OSError as err:
            raise ValueError(f"cannot read {name} after line {number}: {err.strerror or err}") from None
        number += 1
        if len(data) > limit:
            raise ValueError(f"{name}: line {number} is longer than {limit:,} bytes: not a file of lines")
        yield decode_line(_cut_line_end(data), number)


def batches(lines: Iterable[Line], batch_size: int) -> Iterator[list[Line]]:
    """``lines`` in lists of ``batch_size`` (the last may be shorter), each yielded as soon as it is full."""
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, got {batch_size}")
    batch: list[Line] = []
    for line in lines:
        batch.append(line)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
