"""The slow tier's lists in conftest.py name files, tests and fixtures that exist (a renamed test would
otherwise slip into the fast tier unnoticed)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import SLOW_FILES, SLOW_FIXTURES, SLOW_TESTS

TESTS = Path(__file__).resolve().parent


def functions(path: Path) -> set[str]:
    return {
        node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.FunctionDef)
    }


def test_every_listed_slow_file_and_test_exists():
    assert all((TESTS / name).is_file() for name in SLOW_FILES), SLOW_FILES
    for entry in SLOW_TESTS:
        file, function = entry.split("::")
        assert function.split("[")[0] in functions(TESTS / file), entry


def test_every_listed_slow_fixture_exists():
    defined = set().union(*(functions(path) for path in TESTS.glob("*.py")))
    assert SLOW_FIXTURES <= defined, SLOW_FIXTURES - defined
