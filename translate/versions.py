"""Where exports live: ``<models_dir>/<name>/<version>/``, version = 1, 2, 3, ...

Kept free of TensorFlow imports so the command line can check paths at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from translate.messages import short_repr

# The signature TF Serving calls when a request names none.
SIGNATURE = "serving_default"

# A model name is one folder under the models dir and TF Serving's name for
# the model (in models.config and in request URLs): one path component of
# letters, digits, '.', '_' and '-', not hidden (no leading '.', so never '.'
# or '..'), short enough for any file system.
MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def check_model_name(name: object, what: str = "model name") -> str:
    """Returns ``name`` if it is a safe model folder name (:data:`MODEL_NAME`), else raises ValueError."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"{what} {short_repr(name)} must be a single folder name of at most 128 letters, digits, "
            "'.', '_' and '-', not starting with '.'"
        )
    return name


def versions(model_dir: str | Path) -> list[int]:
    """The integer versions present in a model folder, ascending.

    Only folders named by ASCII digits count: hidden temporaries (an
    export's ``.export-*``, see :mod:`translate.export`) and names such as
    ``²`` never do.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.name.isascii() and p.name.isdigit() and int(p.name) > 0 and p.is_dir()
    )


def resolve_version(path: str | Path) -> Path:
    """A version folder: ``path`` itself, or the newest version under a model folder."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.exists():
        raise ValueError(f"model path does not exist: {path}")
    found = versions(path)
    if not found:
        raise ValueError(f"no SavedModel in {path} (expected saved_model.pb or numbered version folders)")
    return path / str(found[-1])


def saved_model_version(path: str | Path, option: str = "--model") -> Path:
    """The version folder of a model path (:func:`resolve_version`), refused if it holds no ``saved_model.pb``.

    A check before TensorFlow loads; ``option`` is how the error names the path.
    """
    version = resolve_version(path)
    if not (version / "saved_model.pb").is_file():
        raise ValueError(f"{option} {path}: not a SavedModel (no saved_model.pb in {version})")
    return version
