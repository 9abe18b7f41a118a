"""Back-translation: synthetic parallel data from monolingual target-language text.

A model trained in the reverse direction (target -> source) translates
sentences of the target language; each translation, a synthetic source,
is paired with the real sentence it came from (Sennrich et al. 2016). The
pairs go to a TSV file, ``synthetic source<TAB>real target`` a line, the
format of ``tsv:`` corpora, so that training can mix them with the real pairs.
Beam search gives the most likely, and least varied, sources; sampling
(``--sample``) gives varied ones, which Edunov et al. (2018) found the better
training signal when there is much monolingual text.

Nothing here imports TensorFlow: the translation function is given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from translate import atomic
from translate.lines import Line

log = logging.getLogger(__name__)

# Lines translated in one chunk, sorted by length inside it so that each batch pads little.
CHUNK_BATCHES = 16


@dataclass
class BacktranslationStats:
    """What :func:`backtranslate` wrote and skipped (each skipped line is named in the log)."""

    lines: int = 0  # monolingual lines read
    pairs: int = 0  # pairs written
    empty: int = 0  # blank lines, skipped
    invalid_utf8: int = 0  # lines that are not valid UTF-8, skipped
    empty_translation: int = 0  # lines whose translation was empty, skipped
    # Pairs in which a tab or a line break became a space: either would split the TSV line. A
    # sampled translation may hold one (a byte-fallback piece such as <0x0A> decodes to "\n").
    tabs_replaced: int = 0


def check_output(out: str | Path) -> Path:
    """Refuses an output that exists (nothing is replaced) or whose folder is a file."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out} exists: backtranslate never replaces a file; choose another --out")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: {out.parent} is not a folder")
    return out


def _chunks(lines: Iterable[Line], size: int):
    chunk: list[Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# A tab, and every character at which str.splitlines breaks a line.
_SPLITS_A_ROW = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _one_line(text: str) -> tuple[str, bool]:
    """``text`` with its tabs and line breaks as spaces, and whether it had any."""
    cleaned = _SPLITS_A_ROW.sub(" ", text)
    return cleaned, cleaned != text


def backtranslate(
    translate: Callable[[list[str]], Sequence[str]],
    lines: Iterable[Line],
    out: str | Path,
    batch_size: int = 32,
    name: str = "the monolingual file",
) -> BacktranslationStats:
    """Translates ``lines`` (target language) with ``translate`` and writes the pairs to ``out``, a new file.

    Each output line is ``translation<TAB>line``. Blank lines, lines that
    are not valid UTF-8 and lines whose translation is empty are skipped
    (counted, and logged with their numbers); tabs inside either side become
    spaces. The file is written under a temporary name and renamed into place
    at the end, never replacing a file (a failure leaves no output).

    Args:
        translate: a list of ``str`` -> their translations, in order (beam or sampling).
        lines: the monolingual text, as :func:`translate.lines.read_lines` gives it.
        name: how log messages name the input.
    Raises:
        ValueError: ``out`` exists, or reading ``lines`` fails (one line).
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, got {batch_size}")
    out = check_output(out)
    created = atomic.make_folders(out.parent)
    stats = BacktranslationStats()
    try:
        with atomic.atomic_path(out, replace=False) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for chunk in _chunks(lines, batch_size * CHUNK_BATCHES):
                stats.lines += len(chunk)
                kept = []
                for line in chunk:
                    if line.problem:
                        stats.invalid_utf8 += 1
                        log.warning("%s line %d skipped: %s", name, line.number, line.problem)
                    elif not line.text.strip():
                        stats.empty += 1
                    else:
                        kept.append(line)
                order = sorted(range(len(kept)), key=lambda i: len(kept[i].text))
                translations = [""] * len(kept)
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    for i, translation in zip(rows, translate([kept[i].text for i in rows])):
                        translations[i] = translation
                for line, translation in zip(kept, translations):
                    if not translation.strip():
                        stats.empty_translation += 1
                        log.warning("%s line %d skipped: its translation is empty", name, line.number)
                        continue
                    source, tab_in_source = _one_line(translation.strip())
                    target, tab_in_target = _one_line(line.text.strip())
                    stats.tabs_replaced += tab_in_source or tab_in_target
                    f.write(f"{source}\t{target}\n")
                    stats.pairs += 1
                log.info("back-translated %d lines of %s", stats.lines, name)
            f.flush()
    except FileExistsError:
        atomic.remove_empty_folders(created)
        raise ValueError(f"{out} exists: backtranslate never replaces a file; choose another --out") from None
    except BaseException:
        atomic.remove_empty_folders(created)  # a failed run leaves no folder it made
        raise
    log.info("wrote %d synthetic pairs to %s", stats.pairs, out)
    return stats
