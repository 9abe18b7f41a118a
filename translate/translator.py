"""``translate.load(path)``: a translator from a SavedModel alone, no training code."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModel uses)

from translate.layout import SIGNATURE, resolve_version
from translate.messages import short_repr


class Translator:
    """Translates with an exported SavedModel.

    Calling it on a string returns a string; on a list of strings, a list.
    The underlying concrete function is safe to call from several threads.
    """

    def __init__(self, path: str | Path, nbest: int | None = None):
        self.path = resolve_version(path)
        self._loaded = tf.saved_model.load(str(self.path))
        self._serve = self._loaded.signatures[SIGNATURE]
        self.beam_size = int(self._loaded.signatures["nbest"].structured_outputs["scores"].shape[-1])
        if nbest is not None and not 1 <= nbest <= self.beam_size:
            raise ValueError(f"nbest must be between 1 and the export's beam size {self.beam_size}, got {nbest}")
        self.nbest = nbest

    @staticmethod
    def _batch(sentences) -> tf.Tensor:
        if isinstance(sentences, (str, bytes)):
            raise ValueError("sentences must be a list of strings")
        try:
            sentences = list(sentences)
        except TypeError:
            raise ValueError("sentences must be a list of strings") from None
        if not all(isinstance(s, (str, bytes)) for s in sentences):
            raise ValueError("sentences must be a list of strings")
        rows = []
        for index, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                try:
                    sentence = sentence.encode("utf-8")
                except UnicodeEncodeError as err:
                    # A lone surrogate ("\ud800"): a Python string that is no Unicode text. TensorFlow's
                    # own error would not say which sentence, nor why.
                    raise ValueError(f"sentence {index} holds a lone surrogate "
                                     f"({short_repr(sentence[err.start:err.end])} at character {err.start}), "
                                     "which is not text: UTF-8 cannot encode it") from None
            rows.append(sentence)
        return tf.constant(rows, dtype=tf.string, shape=[len(rows)])

    def translate_with_scores(self, sentences: list[str]) -> tuple[list[str], list[float]]:
        """The best translations and their scores (length-penalized log-probabilities)."""
        out = self._serve(sentences=self._batch(sentences))
        translations = [t.decode("utf-8", errors="replace") for t in out["translations"].numpy()]
        return translations, [float(s) for s in out["scores"].numpy()]

    def nbest_with_scores(self, sentences: list[str], n: int | None = None) -> list[list[tuple[str, float]]]:
        """For each sentence its ``n`` best translations with scores, best first."""
        n = n or self.beam_size
        out = self._loaded.signatures["nbest"](sentences=self._batch(sentences))
        return [
            [(t.decode("utf-8", errors="replace"), float(s)) for t, s in zip(row_t[:n], row_s[:n])]
            for row_t, row_s in zip(out["translations"].numpy(), out["scores"].numpy())
        ]

    def align(self, sentence: str) -> dict:
        """Source pieces, target pieces and the attention weights ``[target, source]`` of one sentence."""
        return alignment_from_outputs(self._loaded.signatures["align"](sentences=self._batch([sentence])))

    def __call__(self, sentences: str | list[str]):
        """A string -> its translation; a list -> a list. With ``nbest=K``: K translations each."""
        if self.nbest:
            if isinstance(sentences, str):
                return [t for t, _ in self.nbest_with_scores([sentences], self.nbest)[0]]
            return [[t for t, _ in row] for row in self.nbest_with_scores(list(sentences), self.nbest)]
        if isinstance(sentences, str):
            return self.translate_with_scores([sentences])[0][0]
        return self.translate_with_scores(list(sentences))[0]


def alignment_from_outputs(out: dict) -> dict:
    """The first sentence of an ``align`` signature's (or ``TranslationGraph.align``'s) outputs, padding cut.

    Shared by the SavedModel and the in-process graph so that plots of
    either read the same pieces and weights.
    """
    source = [p.decode("utf-8", errors="replace") for p in out["source_pieces"].numpy()[0] if p]
    target = [p.decode("utf-8", errors="replace") for p in out["target_pieces"].numpy()[0] if p]
    attention = out["attention"].numpy()[0][: len(target), : len(source)]
    return {"source_pieces": source, "target_pieces": target, "attention": attention}


def load(path: str | Path, nbest: int | None = None) -> Translator:
    """A :class:`Translator` for a model folder (newest version) or one version folder."""
    return Translator(path, nbest=nbest)
