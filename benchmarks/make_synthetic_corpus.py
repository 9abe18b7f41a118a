"""Writes a synthetic parallel corpus as TSV, for the scale benchmarks (never committed).

    python benchmarks/make_synthetic_corpus.py OUT.tsv --pairs 10000000

Each line is ``source<TAB>target``: 4-40 random "words" drawn from a Zipf-like
vocabulary of made-up syllables; the target is a deterministic respelling of
the source with some words dropped or repeated, so lengths differ a little
as in real translations. About 1 in 200 pairs repeats an earlier one, so the
duplicate filter has work to do. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "ve", "chi", "gu", "ba", "fe", "zo", "le"]


def make_vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    lengths = rng.integers(1, 4, size=size)
    return ["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=n)) for n in lengths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--pairs", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    source_words = make_vocabulary(20_000, rng)
    target_words = [w[::-1] + "s" for w in source_words]
    zipf = 1.0 / np.arange(1, len(source_words) + 1)
    zipf /= zipf.sum()
    block = 100_000
    previous: list[str] = []
    with open(args.out, "w", encoding="utf-8") as out:
        for start in tqdm(range(0, args.pairs, block), unit=" blocks", file=sys.stderr):
            n = min(block, args.pairs - start)
            lengths = rng.integers(4, 41, size=n)
            words = rng.choice(len(source_words), size=int(lengths.sum()), p=zipf)
            drops = rng.random(len(words)) < 0.1
            lines = []
            offset = 0
            for length in lengths:
                ids = words[offset : offset + length]
                kept = ids[~drops[offset : offset + length]]
                offset += length
                source = " ".join(source_words[i] for i in ids).capitalize() + "."
                target = " ".join(target_words[i] for i in kept).capitalize() + "."
                lines.append(f"{source}\t{target}\n")
            repeats = rng.integers(0, n, size=n // 200)
            for i in repeats:
                if previous:
                    lines[i] = previous[i % len(previous)]
            previous = lines[:1000]
            out.writelines(lines)


if __name__ == "__main__":
    main()
