"""The README and the pages under docs/ link to files and headings that exist.

Measurements move between pages as the docs grow (the two-hour base runs left
docs/training.md for docs/base-preset.md); a link left pointing at the old
place fails here rather than on a reader.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@functools.cache
def heading_anchors(page: Path) -> frozenset[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation but ``-`` and ``_`` dropped, spaces
    as ``-``, a repeated heading numbered ``-1``, ``-2``... Headings inside fenced code blocks do not count."""
    anchors: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            anchor, n = slug, 0
            while anchor in anchors:
                n += 1
                anchor = f"{slug}-{n}"
            anchors.add(anchor)
    return frozenset(anchors)


def relative_links(page: Path) -> list[str]:
    return [url for url in LINK.findall(page.read_text(encoding="utf-8")) if not re.match(r"[a-z]+:", url)]


def test_the_anchor_of_a_heading_is_githubs():
    page = REPO / "docs" / "base-preset.md"
    assert "every-two-hour-run" in heading_anchors(page)
    assert "float32-against-mixed-bfloat16-a-second-seed-5-december-2026" in heading_anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading_that_exist(page):
    broken = []
    for url in relative_links(page):
        path, _, anchor = url.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{url} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in heading_anchors(target):
            broken.append(f"{url} (no such heading)")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
