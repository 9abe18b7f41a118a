"""The tiny setting: a model small enough to train in seconds, large enough to exercise every part.

It trains on ``data/tiny.tsv`` beside this file (39 English-Spanish pairs,
shipped as package data so that an installed package has it too). The
tests (``tests/conftest.py``), the notebooks (``TRANSLATE_NOTEBOOK_TINY=1``)
and the benchmarks' tests use it. Importing this module does not import
TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

TINY_CORPUS = Path(__file__).resolve().parent / "data" / "tiny.tsv"

# A model small enough to train in seconds; large enough to exercise every part.
TINY_OVERRIDES = [
    f"data.corpus=tsv:{TINY_CORPUS}",
    "data.src_vocab_size=400",
    "data.tgt_vocab_size=400",
    "data.max_pieces=40",
    "model.embedding_dim=16",
    "model.encoder_units=16",
    "model.decoder_units=32",
    "model.attention_units=16",
    "model.attention_query_input=true",  # as the presets: search, export and serving see that query too
    "model.dropout=0.0",
    "train.batch_size=8",
    "train.epochs=2",
    "train.steps_per_epoch=15",
    "train.learning_rate=0.01",
    # Tracing the align search costs seconds per run; tests/test_plotting.py runs the callback itself.
    "train.attention_images=0",
    "decode.max_length_cap=40",
    "decode.max_source_pieces=60",
    # One search loop per signature: an export traces each loop, so two shards double its tracing, the
    # largest cost of most slow tests. The tests' shared export (tests/conftest.py, tiny_export) and
    # tests/test_search.py keep covering several shards.
    "decode.shards=1",
]


def tiny_config(tmp: Path, *extra: str):
    """The tiny config writing its run folder and exports under ``tmp``; ``extra`` overrides come last."""
    from translate.config import load_config

    tmp = Path(tmp)
    return load_config(
        overrides=[*TINY_OVERRIDES, f"run_dir={tmp / 'run'}", f"export.models_dir={tmp / 'saved_models'}", *extra]
    )
