"""Bounded values in error messages.

A value a user wrote goes into an error message through :func:`short_repr`,
never through ``repr`` or an f-string alone: a 1 MB string or a deeply nested
list from a config file must give one short line, and building the message
must cost no more than the line it prints.
"""

from __future__ import annotations

import reprlib

# The longest value, in characters, an error message quotes.
MAX_REPR = 80


class _Repr(reprlib.Repr):
    def repr_int(self, x, level):
        # Python refuses to print an integer of more than 4,300 digits (ValueError), and YAML's 0b and
        # 0x numbers have no length limit.
        if x.bit_length() > 4096:
            return f"<an integer of {x.bit_length():,} bits>"
        return super().repr_int(x, level)


_REPR = _Repr()
# reprlib walks containers only this deep and this wide, and cuts long strings
# and numbers in the middle, so the work is bounded whatever the value is.
_REPR.maxlevel = 3
_REPR.maxtuple = _REPR.maxlist = _REPR.maxarray = _REPR.maxdict = 4
_REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 4
_REPR.maxstring = MAX_REPR
_REPR.maxlong = 40
_REPR.maxother = MAX_REPR


def short_repr(value: object) -> str:
    """``repr(value)``, at most :data:`MAX_REPR` characters long and on one line."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."
