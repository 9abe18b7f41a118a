"""Pictures: attention heatmaps and learning curves, as matplotlib figures and PNG files.

Every function returns a ``matplotlib.figure.Figure`` drawn on the Agg
canvas. The figures are made without ``pyplot``, so the library never
switches the global matplotlib backend (a notebook keeps its inline backend
and shows a returned figure as it is) and keeps no figure alive in pyplot's
registry (training can draw one each epoch without leaking memory).

* :func:`plot_attention`: source pieces x target pieces of one sentence, from
  an exported model's ``align`` signature (:class:`translate.translator.Translator`)
  or from an in-process :class:`translate.inference.TranslationGraph` / run;
* :func:`plot_learning_curves`: loss, dev BLEU, learning rate and gradient
  norm per epoch from a run's ``history.csv``;
* :func:`save_png` and :func:`figure_to_rgb` (TensorBoard images, see
  :class:`translate.callbacks.AttentionImages`).

Nothing here imports TensorFlow at module level: learning curves need only
the CSV file.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from translate.atomic import atomic_path

log = logging.getLogger(__name__)

HISTORY = "history.csv"  # as translate.training writes it (not imported: it loads TensorFlow)

# Inches per piece on the heatmap's axes, and the largest figure side: a
# 250-piece source still gives a readable, bounded image.
_INCHES_PER_PIECE = 0.32
_MAX_INCHES = 40.0


def attention_figure(
    source_pieces: Sequence[str], target_pieces: Sequence[str], attention, title: str | None = None
) -> Figure:
    """A heatmap of ``attention[target, source]``: which source pieces each target piece looked at.

    Rows are target pieces top to bottom, columns source pieces left to
    right; each row is one decoder step's softmax, so it sums to 1.

    Raises:
        ValueError: when the shape of ``attention`` does not match the pieces,
            or there is no piece on a side to plot.
    """
    weights = np.asarray(attention, dtype=np.float32)
    if weights.ndim != 2 or weights.shape != (len(target_pieces), len(source_pieces)):
        raise ValueError(
            f"attention of shape {weights.shape} does not match {len(target_pieces)} target x "
            f"{len(source_pieces)} source pieces"
        )
    if not source_pieces:
        raise ValueError("nothing to plot: the sentence has no source pieces")
    width = min(_MAX_INCHES, 2.5 + _INCHES_PER_PIECE * len(source_pieces))
    height = min(_MAX_INCHES, 1.8 + _INCHES_PER_PIECE * len(target_pieces))
    figure = Figure(figsize=(max(width, 4.0), max(height, 3.0)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if not target_pieces:
        # A model may end a translation at once (an untrained one often does):
        # show that plainly instead of failing on an empty matrix.
        weights = np.full((1, len(source_pieces)), np.nan, dtype=np.float32)
        axes.text(
            0.5,
            0.5,
            "empty translation: the model stopped at the first step",
            ha="center",
            va="center",
            transform=axes.transAxes,
            color="gray",
        )
    # The colour scale ends at the largest weight, not at 1: an untrained or
    # unsure model spreads its attention thin, and a 0..1 scale would show it
    # as one flat colour.
    top = float(np.nanmax(weights)) if np.isfinite(weights).any() else 1.0
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(top, 1e-6), aspect="auto", interpolation="nearest")
    axes.set_xticks(range(len(source_pieces)), list(source_pieces), rotation=90, fontsize=9)
    axes.set_yticks(range(len(target_pieces)), list(target_pieces), fontsize=9)  # none when empty
    axes.set_xlabel("source pieces")
    axes.set_ylabel("target pieces")
    axes.xaxis.set_ticks_position("top")
    axes.xaxis.set_label_position("top")
    figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02, label="attention weight")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def alignment(model, sentence: str) -> dict:
    """Source pieces, target pieces and attention ``[target, source]`` of ``sentence``.

    ``model`` is a loaded export (:class:`~translate.translator.Translator`,
    which runs its ``align`` signature), a
    :class:`~translate.inference.TranslationGraph`, or a training run
    (:class:`~translate.training.Run`, whose graph is used): the same
    function either way, so a plot during training shows what the export
    will serve.
    """
    if not isinstance(sentence, str):
        raise ValueError(f"sentence must be a string, got {type(sentence).__name__}")
    import tensorflow as tf

    from translate.inference import TranslationGraph
    from translate.translator import Translator, alignment_from_outputs

    if isinstance(model, Translator):
        return model.align(sentence)
    graph = getattr(model, "graph", model)  # a Run holds its TranslationGraph
    if not isinstance(graph, TranslationGraph):
        raise ValueError(
            f"cannot align with a {type(model).__name__}: expected a Translator, a TranslationGraph or a training Run"
        )
    return alignment_from_outputs(graph.align(tf.constant([sentence], dtype=tf.string)))


def plot_attention(model, sentence: str, title: str | None = None) -> Figure:
    """The attention heatmap of ``model``'s translation of ``sentence`` (see :func:`alignment`).

    The default title is the source and its translation (pieces joined).
    """
    aligned = alignment(model, sentence)
    if title is None:
        title = f"{_shorten(sentence)}\n→ {_shorten(_join_pieces(aligned['target_pieces']))}"
    return attention_figure(aligned["source_pieces"], aligned["target_pieces"], aligned["attention"], title)


def _join_pieces(pieces: Sequence[str]) -> str:
    # SentencePiece marks a word start with U+2581; the EOS piece is not text.
    return "".join(p for p in pieces if p != "</s>").replace("\u2581", " ").strip()


def _shorten(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_history(path: str | Path) -> dict[str, list[float]]:
    """The columns of a run's ``history.csv`` (a run folder or the file itself) as float lists.

    Empty or non-numeric cells become NaN, so a panel shows a gap rather than
    failing; rows are sorted by epoch.

    Raises:
        ValueError: a missing or unreadable file, no header, no ``epoch``
            column, or no rows.
    """
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            fields = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise ValueError(f"no training history: {path} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read training history {path}: {err}") from None
    if not rows:
        raise ValueError(f"training history {path} has no epochs yet")
    if "epoch" not in fields:
        raise ValueError(f"{path} is not a training history: no 'epoch' column")
    history = {name: [_number(row.get(name)) for row in rows] for name in fields if name}
    order = sorted(range(len(rows)), key=lambda i: history["epoch"][i])
    return {name: [values[i] for i in order] for name, values in history.items()}


def _number(cell: str | None) -> float:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan  # inf (a diverged epoch) would squash the axis


# (panel title, columns, log scale when the values span this many decades)
_PANELS = (
    ("loss (per-token cross-entropy)", ("loss", "val_loss"), None),
    ("dev BLEU (greedy)", ("dev_bleu",), None),
    ("learning rate", ("learning_rate",), 1.0),
    ("gradient norm before clipping", ("grad_norm",), 2.0),
)
_LABELS = {
    "loss": "train",
    "val_loss": "dev",
    "dev_bleu": "dev BLEU",
    "learning_rate": "learning rate",
    "grad_norm": "global norm",
}


def learning_curves_figure(history: Mapping[str, Sequence[float]], title: str | None = None) -> Figure:
    """Four panels per epoch: train and dev loss, dev BLEU, learning rate, gradient norm.

    ``history`` maps column names to per-epoch values (:func:`read_history`).
    A column the run did not log (an older run without ``grad_norm``) leaves
    its panel with a note instead of failing.
    """
    if "epoch" not in history or not history["epoch"]:
        raise ValueError("history has no epochs")
    epochs = [int(e) + 1 if math.isfinite(e) else math.nan for e in history["epoch"]]  # CSVLogger counts from 0
    figure = Figure(figsize=(10, 7), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (panel_title, columns, log_decades) in enumerate(_PANELS):
        axes = figure.add_subplot(2, 2, index + 1)
        axes.set_title(panel_title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        present = [c for c in columns if c in history and any(math.isfinite(v) for v in history[c])]
        if not present:
            axes.text(
                0.5,
                0.5,
                f"not logged ({', '.join(columns)})",
                ha="center",
                va="center",
                transform=axes.transAxes,
                color="gray",
            )
            continue
        for column in present:
            axes.plot(epochs, history[column], marker="o", markersize=3, label=_LABELS.get(column, column))
        values = [v for c in present for v in history[c] if math.isfinite(v) and v > 0]
        if log_decades is not None and values and math.log10(max(values) / min(values)) >= log_decades:
            axes.set_yscale("log")
        if len(present) > 1:
            axes.legend(fontsize=8)
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    return figure


def plot_learning_curves(run_or_csv: str | Path, title: str | None = None) -> Figure:
    """Learning curves of a run folder (or its ``history.csv``), titled with the run's path by default."""
    history = read_history(run_or_csv)
    return learning_curves_figure(history, title if title is not None else str(run_or_csv))


def save_png(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Writes ``figure`` as a PNG (creating the folder); a path that cannot be written raises ValueError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # format= names the format, so the temporary name may end otherwise
            figure.savefig(tmp, format="png", dpi=dpi)
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def figure_to_rgb(figure: Figure, dpi: int = 80) -> np.ndarray:
    """The figure rendered as ``uint8 [height, width, 3]``, as ``tf.summary.image`` takes it."""
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
