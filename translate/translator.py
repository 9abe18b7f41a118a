"""``translate.load(path)``: a translator from a SavedModel alone, no training code."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModel uses)

from translate.layout import SIGNATURE, resolve_version


class Translator:
    """Translates with an exported SavedModel.

    Calling it on a string returns a string; on a list of strings, a list.
    The underlying concrete function is safe to call from several threads.
    """

    def __init__(self, path: str | Path):
        self.path = resolve_version(path)
        self._loaded = tf.saved_model.load(str(self.path))
        self._serve = self._loaded.signatures[SIGNATURE]

    def translate_with_scores(self, sentences: list[str]) -> tuple[list[str], list[float]]:
        """Translations and their log-probabilities."""
        if isinstance(sentences, str) or not all(isinstance(s, (str, bytes)) for s in sentences):
            raise ValueError("sentences must be a list of strings")
        batch = tf.constant(list(sentences), dtype=tf.string, shape=[len(sentences)])
        out = self._serve(sentences=batch)
        translations = [t.decode("utf-8", errors="replace") for t in out["translations"].numpy()]
        return translations, [float(s) for s in out["scores"].numpy()]

    def __call__(self, sentences: str | list[str]) -> str | list[str]:
        if isinstance(sentences, str):
            return self.translate_with_scores([sentences])[0][0]
        return self.translate_with_scores(list(sentences))[0]


def load(path: str | Path) -> Translator:
    """A :class:`Translator` for a model folder (newest version) or one version folder."""
    return Translator(path)
