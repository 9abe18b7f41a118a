"""Where exports live: ``<models_dir>/<name>/<version>/``, version = 1, 2, 3, ...

Kept free of TensorFlow imports so the command line can check paths at once.
"""

from __future__ import annotations

from pathlib import Path

# The signature TF Serving calls when a request names none.
SIGNATURE = "serving_default"


def versions(model_dir: str | Path) -> list[int]:
    """The integer versions present in a model folder, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


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
