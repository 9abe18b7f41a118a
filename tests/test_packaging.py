"""The package: pyproject.toml agrees with the requirements files, and an installed wheel finds its data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_lines(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def test_dependencies_are_the_pins_of_requirements_txt():
    pins = requirement_lines("requirements.txt")
    assert all("==" in pin for pin in pins)
    assert PYPROJECT["project"]["dependencies"] == pins


def test_the_dev_extra_is_what_requirements_dev_txt_adds():
    lines = requirement_lines("requirements-dev.txt")
    assert lines[0] == "-r requirements.txt"
    assert PYPROJECT["project"]["optional-dependencies"]["dev"] == lines[1:]


def test_the_console_script_is_what_python_dash_m_calls():
    assert PYPROJECT["project"]["scripts"] == {"translate": "translate.cli:main"}
    main = (REPO / "translate" / "__main__.py").read_text(encoding="utf-8")
    assert "from translate.cli import main" in main and "sys.exit(main())" in main


def test_every_package_folder_is_packaged():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "translate").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"translate.configs": "configs"}


@pytest.mark.slow
def test_an_installed_wheel_finds_its_presets_and_tiny_corpus_and_has_the_script(tmp_path):
    """Built and installed (not editable) away from the checkout: presets and the tiny corpus come from the package."""
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources.
    source = tmp_path / "source"
    for name in ("translate", "configs"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheel"),
            str(source),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    [wheel] = (tmp_path / "wheel").glob("translate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "translate/configs/quick.yaml",
        "translate/configs/base.yaml",
        "translate/configs/large.yaml",
        "translate/testing/data/tiny.tsv",
        "translate/testing/serving_standin.py",
        "translate/bahdanau_kernel.cc",
    } <= names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    env["PYTHONPATH"] = str(target)
    check = (
        "from translate.config import CONFIGS_DIR, load_config; from translate.testing.tiny import tiny_config; "
        "print(CONFIGS_DIR); print(load_config('quick').model.cell); print(tiny_config('x').data.corpus)"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], check=True, env=env, cwd=tmp_path, capture_output=True, text=True
    ).stdout.splitlines()
    assert out[0] == str(target / "translate" / "configs") and out[1] == "gru"
    assert out[2] == f"tsv:{target / 'translate' / 'testing' / 'data' / 'tiny.tsv'}"
    help_text = subprocess.run(
        [str(target / "bin" / "translate"), "--help"], check=True, env=env, cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "prepare" in help_text and "serving-config" in help_text
