"""What every benchmark does with its result: name the machine, print JSON, keep a copy, show a table."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}"


def emit(report: dict, out: str | None) -> None:
    """Prints ``report`` as JSON and, when ``out`` is given, writes it there too."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")


def print_table(headers: list[str], rows: list[list], numeric: int = 1) -> None:
    """A Markdown table on stderr (stdout carries the JSON); columns from ``numeric`` on are right-aligned."""
    import sys

    print("\n| " + " | ".join(headers) + " |", file=sys.stderr)
    print("|" + "---|" * numeric + "---:|" * (len(headers) - numeric), file=sys.stderr)
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |", file=sys.stderr)
