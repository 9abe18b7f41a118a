"""The C++ serving harness (tests/cpp/serve_savedmodel.cc) runs a SavedModel
shaped like translate's export exactly as Python does.

A toy export is built here, in the same shape as the real one: a
``keras.export.ExportArchive`` with a ``serving_default`` signature taking
``sentences`` (``tf.string [None]``) that repairs invalid UTF-8, NFKC-normalizes
with ``tensorflow_text.normalize_utf8``, tokenizes with a
``tensorflow_text.SentencepieceTokenizer`` (byte fallback), runs an explicit
``tf.while_loop`` (``add_endpoint`` traces without autograph), detokenizes, and
returns ``translations`` (``tf.string [batch]``) and ``scores``
(``float32 [batch]``). The C++ program must load it with only the C++
SavedModel loader plus the tensorflow_text op libraries and give the same rows
as the in-process Python function.

Note: nothing here calls ``tf.random.set_seed``; doing so after a
``SentencepieceTokenizer`` exists breaks that tokenizer.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

import cpp_serving  # tests/cpp_serving.py: pytest puts tests/ on sys.path
from translate.text import PAD_ID

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not (os.environ.get("CXX") or shutil.which("g++")),
    reason="the C++ serving harness needs Linux and g++",
)

SIGNATURE = "serving_default"

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps in the warm sun",
    "the fox runs into the forest at night",
    "birds sing in the trees every morning",
    "we translate sentences from one language to another",
    "the model reads a sentence and writes a translation",
    "small models train quickly on small data",
    "every token has an id in the vocabulary",
    "unknown characters fall back to their bytes",
    "the river flows past the old mill",
    "children play football in the park",
    "she reads a book by the window",
    "the train leaves the station at noon",
    "coffee and tea are served in the morning",
    "the cat watches the fox from the wall",
    "rain falls on the roof all night long",
    "he writes letters to his friends",
    "the market opens early on saturday",
    "snow covers the mountains in winter",
    "they walk along the beach at sunset",
    "the teacher explains the lesson again",
    "a new bridge crosses the river",
    "the garden is full of flowers in spring",
    "music plays softly in the background",
    "the old man feeds the pigeons",
    "our team won the match yesterday",
    "the library closes at eight",
    "fresh bread smells wonderful",
    "the ship sails across the sea",
    "stars shine brightly over the desert",
]

SENTENCES = [
    b"the quick brown fox jumps over the lazy dog",
    "\uff26\uff55\uff4c\uff4c \uff57\uff49\uff44\uff54\uff48 \ufb01ve".encode(),  # NFKC: "Full width five"
    "the fox \U0001f98a jumps \U0001f642".encode(),  # emoji, byte fallback
    b"",
    "\u72d0\u72f8 \u00fcber caf\u00e9".encode(),  # out-of-vocabulary letters
    b"bad \xff\xfe bytes",  # invalid UTF-8 -> U+FFFD
    b"  leading and trailing spaces  ",
]


def _train_sentencepiece() -> bytes:
    from translate.text import train_sentencepiece

    return train_sentencepiece(CORPUS, vocab_size=300)


@pytest.fixture(scope="module")
def toy_export(tmp_path_factory):
    """(export dir, in-process serving tf.function)."""
    import keras
    import tensorflow as tf

    from translate.text import encode, make_tokenizer

    class TokenizerHolder(tf.Module):
        def __init__(self, model_proto: bytes):
            super().__init__()
            self.tokenizer = make_tokenizer(model_proto)

    holder = TokenizerHolder(_train_sentencepiece())

    def serve(sentences):
        ragged = encode(holder.tokenizer, sentences)
        ids = ragged.to_tensor(default_value=PAD_ID)
        lengths = tf.cast(ragged.row_lengths(), tf.int32)
        batch, max_len = tf.shape(ids)[0], tf.shape(ids)[1]
        positions = tf.range(max_len)[tf.newaxis, :]

        # A stand-in for greedy decoding: one step per position, emitting the
        # source piece and accumulating a per-sentence score.
        def cond(t, out, score):
            return t < max_len

        def body(t, out, score):
            live = t < lengths
            piece = tf.where(live, ids[:, t], PAD_ID)
            out = tf.where(positions == t, piece[:, tf.newaxis], out)
            score = score - tf.where(live, tf.math.log1p(tf.cast(piece, tf.float32)), 0.0)
            return t + 1, out, score

        _, out, score = tf.while_loop(cond, body, (tf.constant(0), tf.zeros_like(ids), tf.zeros([batch], tf.float32)))
        translations = holder.tokenizer.detokenize(tf.RaggedTensor.from_tensor(out, lengths=lengths))
        scores = score / tf.cast(lengths + 1, tf.float32)
        return {"translations": translations, "scores": scores}

    archive = keras.export.ExportArchive()
    archive.track(holder)
    fn = archive.add_endpoint(SIGNATURE, serve, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    export_dir = tmp_path_factory.mktemp("toy_export") / "1"
    archive.write_out(str(export_dir), verbose=False)
    return export_dir, fn


@pytest.fixture(scope="module")
def binary():
    return cpp_serving.build_serving_binary()


def _python_rows(fn, sentences: list[bytes]) -> list[list[str | float]]:
    import tensorflow as tf

    out = fn(tf.constant(sentences, dtype=tf.string))
    scores = out["scores"].numpy().tolist()
    translations = [t.decode("utf-8", "surrogateescape") for t in out["translations"].numpy().tolist()]
    return [[s, t] for s, t in zip(scores, translations)]  # sorted keys: scores, translations


def _assert_rows_match(cpp_rows, py_rows):
    assert len(cpp_rows) == len(py_rows)
    for cpp_row, py_row in zip(cpp_rows, py_rows):
        assert cpp_row[1] == py_row[1]
        assert cpp_row[0] == pytest.approx(py_row[0], abs=1e-5)


def test_cpp_rows_match_python(toy_export, binary):
    export_dir, fn = toy_export
    cpp_rows = cpp_serving.run_signature(binary, export_dir, SIGNATURE, SENTENCES)
    py_rows = _python_rows(fn, SENTENCES)
    _assert_rows_match(cpp_rows, py_rows)

    by_input = dict(zip(SENTENCES, cpp_rows))
    assert by_input[SENTENCES[0]][1] == "the quick brown fox jumps over the lazy dog"
    assert by_input[SENTENCES[1]][1] == "Full width five"  # NFKC ran in C++
    assert by_input[SENTENCES[2]][1] == "the fox \U0001f98a jumps \U0001f642"  # raw UTF-8 out
    assert by_input[b""] == [0.0, ""]
    assert by_input[SENTENCES[5]][1] == "bad \ufffd\ufffd bytes"
    assert all(isinstance(score, float) and score <= 0.0 for score, _ in cpp_rows)


def test_cpp_matches_reloaded_savedmodel(toy_export, binary):
    import tensorflow as tf

    export_dir, _ = toy_export
    reloaded = tf.saved_model.load(str(export_dir)).signatures[SIGNATURE]
    out = reloaded(sentences=tf.constant(SENTENCES[:3]))
    py_rows = [
        [s, t.decode("utf-8", "surrogateescape")]
        for s, t in zip(out["scores"].numpy().tolist(), out["translations"].numpy().tolist())
    ]
    _assert_rows_match(cpp_serving.run_signature(binary, export_dir, SIGNATURE, SENTENCES[:3]), py_rows)


def test_single_sentence_and_empty_batch(toy_export, binary):
    export_dir, fn = toy_export
    rows = cpp_serving.run_signature(binary, export_dir, SIGNATURE, [b""])
    assert rows == [[0.0, ""]]
    # Empty stdin: a batch of 0 goes through Session::Run, no rows, exit 0.
    assert cpp_serving.run_signature(binary, export_dir, SIGNATURE, []) == []


def test_minimal_op_libraries_suffice(toy_export, binary):
    export_dir, fn = toy_export
    libs = cpp_serving.text_op_libraries(minimal=True)
    assert [p.name for p in libs] == list(cpp_serving.REQUIRED_TEXT_OP_LIBRARIES)
    rows = cpp_serving.run_signature(binary, export_dir, SIGNATURE, SENTENCES, op_libraries=libs)
    _assert_rows_match(rows, _python_rows(fn, SENTENCES))


@pytest.mark.parametrize(
    "dropped, missing_op",
    [("_sentencepiece_tokenizer.so", "SentencepieceOp"), ("_normalize_ops.so", "NormalizeUTF8")],
)
def test_each_required_op_library_is_needed(toy_export, binary, dropped, missing_op):
    export_dir, _ = toy_export
    libs = [p for p in cpp_serving.text_op_libraries() if p.name != dropped]
    # SentencepieceOp is missing at load time; NormalizeUTF8 only at the
    # first Session::Run, since it sits in a function body.
    with pytest.raises(RuntimeError, match=f"Op type not registered '{missing_op}'"):
        cpp_serving.run_signature(binary, export_dir, SIGNATURE, [b"the fox"], op_libraries=libs)


def test_errors_are_clear(toy_export, binary, tmp_path):
    export_dir, _ = toy_export
    with pytest.raises(KeyError, match="nope"):
        cpp_serving.run_signature(binary, export_dir, "nope", [b"x"])
    not_a_library = tmp_path / "_not_a_library.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(RuntimeError, match="could not load op library"):
        cpp_serving.run_signature(binary, export_dir, SIGNATURE, [b"x"], op_libraries=[not_a_library])
    with pytest.raises(ValueError, match="newline"):
        cpp_serving.run_signature(binary, export_dir, SIGNATURE, [b"two\nlines"])


def test_binary_asks_for_a_known_signature(toy_export, binary):
    import subprocess

    export_dir, _ = toy_export
    libs = [str(p) for p in cpp_serving.text_op_libraries(minimal=True)]
    proc = subprocess.run([str(binary), str(export_dir), "nope", *libs], input=b"x\n", capture_output=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stdout == b""
    assert b"signature 'nope' not found; available: [" in proc.stderr
    assert SIGNATURE.encode() in proc.stderr


def test_binary_is_cached(binary):
    mtime = binary.stat().st_mtime_ns
    assert cpp_serving.build_serving_binary() == binary
    assert binary.stat().st_mtime_ns == mtime
