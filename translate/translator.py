"""``translate.load(path)``: a translator from a SavedModel alone, no training code.

Loading a SavedModel runs its graph (its restore and initializer functions),
so only load models from sources you trust. Before anything runs,
:func:`check_export` reads ``saved_model.pb`` as a protocol buffer and the
config asset as YAML and refuses, with one line, whatever is not an export of
this project: a missing or truncated ``saved_model.pb``, a SavedModel of
another project (no ``assets/config.yaml`` with this project's config sections,
or not the ``serving_default``/``nbest``/``align`` signatures with a
``sentences`` string input), missing SentencePiece assets or variables.
Given a model folder, :func:`load` takes the newest version that loads and
logs a warning naming each newer version it skipped and why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModel uses)
import yaml
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2

from translate.messages import short_repr
from translate.versions import SIGNATURE, resolve_version, versions

log = logging.getLogger(__name__)

# Every export of this project has these signatures, each with the one input
# ``sentences: tf.string [batch]`` and at least these outputs (export.py).
EXPECTED_SIGNATURES = {
    SIGNATURE: ("translations", "scores"),
    "nbest": ("translations", "scores"),
    "align": ("source_pieces", "target_pieces", "attention"),
}
CONFIG_ASSET = "assets/config.yaml"
CONFIG_SECTIONS = ("data", "model", "decode")
REQUIRED_FILES = ("assets/src.model", "assets/tgt.model", "variables/variables.index")


def _first_line(err: BaseException, limit: int = 300) -> str:
    return ((str(err).strip().splitlines() or [type(err).__name__])[0])[:limit]


def check_export(version: str | Path) -> None:
    """Refuses a version folder that is not a readable export of this project, before anything runs.

    Reads ``saved_model.pb`` as a protocol buffer and ``assets/config.yaml``
    as YAML (neither runs any of the graph) and checks the files the
    translator needs.

    Raises:
        ValueError: one line saying what is wrong (without the folder's name,
            which the caller adds).
    """
    version = Path(version)
    pb = version / "saved_model.pb"
    if not pb.is_file():
        if version.is_dir() and not any(version.iterdir()):
            raise ValueError("the version folder is empty (no saved_model.pb)")
        raise ValueError("no saved_model.pb")
    try:
        data = pb.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read saved_model.pb: {err.strerror or err}") from None
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except DecodeError:
        raise ValueError(
            f"saved_model.pb is truncated or damaged ({len(data)} bytes that do not parse as a SavedModel)"
        ) from None
    served = [graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags]
    if not served:
        raise ValueError("saved_model.pb holds no MetaGraph tagged 'serve' (truncated, or not a SavedModel)")
    if not (version / CONFIG_ASSET).is_file():
        raise ValueError(f"not an export of this project: no {CONFIG_ASSET} (a SavedModel of another project?)")
    try:
        values = yaml.safe_load((version / CONFIG_ASSET).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        why = _first_line(err, 200)
        raise ValueError(f"not an export of this project: cannot read {CONFIG_ASSET} ({why})") from None
    # The sections save_config writes. Only their presence is checked, not every key: an export
    # made before a config key was added or dropped still loads.
    lacking = [key for key in CONFIG_SECTIONS if not isinstance(values, dict) or not isinstance(values.get(key), dict)]
    if lacking:
        raise ValueError(
            f"not an export of this project: {CONFIG_ASSET} is not this project's config "
            f"(no {', '.join(lacking)} section{'s' if len(lacking) > 1 else ''})"
        )
    signatures = served[0].signature_def
    missing = [name for name in EXPECTED_SIGNATURES if name not in signatures]
    if missing:
        public = sorted(name for name in signatures if not name.startswith("__"))  # not __saved_model_init_op
        raise ValueError(
            f"not an export of this project: no {', '.join(missing)} signature"
            f"{'s' if len(missing) > 1 else ''} (it has: {', '.join(public) or 'none'})"
        )
    for name, outputs in EXPECTED_SIGNATURES.items():
        signature = signatures[name]
        inputs = signature.inputs
        if set(inputs) != {"sentences"} or inputs["sentences"].dtype != tf.string.as_datatype_enum:
            raise ValueError(
                f"not an export of this project: signature {name} does not take "
                f"'sentences' strings (inputs: {', '.join(sorted(inputs)) or 'none'})"
            )
        lacking = [key for key in outputs if key not in signature.outputs]
        if lacking:
            raise ValueError(f"not an export of this project: signature {name} has no {', '.join(lacking)} output")
    for name in REQUIRED_FILES:
        if not (version / name).is_file():
            raise ValueError(f"incomplete export: no {name}")


def _load_version(version: Path):
    """Checks, then loads one version folder; any failure is a ValueError of one line (without the folder)."""
    check_export(version)
    try:
        return tf.saved_model.load(str(version))
    except Exception as err:  # noqa: BLE001 -- TensorFlow raises many types for a broken SavedModel
        raise ValueError(_first_line(err)) from None


def load_newest_loadable(path: str | Path) -> tuple[Path, object]:
    """``(version folder, loaded SavedModel)`` for a version folder, or the newest version of a model
    folder that loads.

    A version folder is loaded or refused. In a model folder, newer versions
    that do not load (an empty folder, a truncated file, another project's
    model) are skipped with a warning naming each; if none loads, the
    ValueError names the newest version and its problem.
    """
    path = Path(path)
    found = [] if (path / "saved_model.pb").is_file() else versions(path)
    if not found:
        version = resolve_version(path)  # a missing path, or a folder with neither file nor versions
        try:
            return version, _load_version(version)
        except ValueError as err:
            raise ValueError(f"cannot load the SavedModel in {version}: {err}") from None
    problems = []
    for number in reversed(found):
        version = path / str(number)
        try:
            loaded = _load_version(version)
        except ValueError as err:
            problems.append((number, str(err)))
            continue
        for skipped, why in problems:
            log.warning("skipped version %s of %s, which does not load: %s", skipped, path, why)
        return version, loaded
    newest, why = problems[0]
    older = [str(number) for number, _ in problems[1:]]
    raise ValueError(
        f"cannot load the SavedModel in {path / str(newest)}: {why}"
        + (f"; no older version loads either (tried {', '.join(older)})" if older else "")
    )


class Translator:
    """Translates with an exported SavedModel.

    Calling it on a string returns a string; on a list of strings, a list.
    The underlying concrete function is safe to call from several threads.
    """

    def __init__(self, path: str | Path, nbest: int | None = None):
        self.path, self._loaded = load_newest_loadable(path)
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
                    raise ValueError(
                        f"sentence {index} holds a lone surrogate "
                        f"({short_repr(sentence[err.start : err.end])} at character {err.start}), "
                        "which is not text: UTF-8 cannot encode it"
                    ) from None
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

    def sample_with_scores(
        self, sentences: list[str], temperature: float = 1.0, top_k: int = 0
    ) -> tuple[list[str], list[float]]:
        """One translation drawn per sentence (the ``sample`` signature) and its log-probability.

        ``temperature`` divides the logits (0: the most likely piece each step);
        ``top_k`` keeps each step's k most likely pieces (0: all).
        """
        if "sample" not in self._loaded.signatures:
            raise ValueError(f"{self.path} has no sample signature (exported before sampling existed): export it again")
        if not temperature >= 0:
            raise ValueError(f"the temperature must be >= 0, got {temperature}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0: every piece), got {top_k}")
        batch = self._batch(sentences)
        n = int(batch.shape[0])
        out = self._loaded.signatures["sample"](
            sentences=batch,
            temperature=tf.fill([n], tf.constant(temperature, tf.float32)),
            top_k=tf.fill([n], tf.constant(top_k, tf.int32)),
        )
        translations = [t.decode("utf-8", errors="replace") for t in out["translations"].numpy()]
        return translations, [float(s) for s in out["scores"].numpy()]

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
    """A :class:`Translator` for a model folder (its newest version that loads) or one version folder.

    Loading runs the SavedModel's graph: load only models from trusted
    sources. Whatever is not an export of this project is refused first,
    with a ValueError of one line (see :func:`check_export`).
    """
    return Translator(path, nbest=nbest)
