"""The recurrent encoder-decoder with attention, in the Keras functional API.

    source ids ─ Embedding(mask_zero) ─ Bidirectional(RNN) ─> memory h_j
                                                   └ final states ─ Dense(tanh) ─> s_0   (the bridge)
    target_in ─ Embedding ─ AttentionDecoder(cell + Bahdanau attention) ─> s_t, c_t
    [s_t; c_t; y_{t-1}] ─ Dense(tanh) ─ Dense(vocab) ─> logits

Three models are built from the *same* layer objects (no weight copying):

* ``training``: ``(source_ids, target_in)`` -> logits, for teacher forcing;
* ``encoder``: ``source_ids`` -> memory, attention keys, source mask, s_0;
* ``step``: one decoder step, used by :mod:`translate.search`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from translate.attention import BahdanauAttention
from translate.config import ModelConfig

_CELLS = {
    "gru": (keras.layers.GRU, keras.layers.GRUCell, 1),
    "lstm": (keras.layers.LSTM, keras.layers.LSTMCell, 2),
    "simple_rnn": (keras.layers.SimpleRNN, keras.layers.SimpleRNNCell, 1),
}


def num_states(cell: str) -> int:
    """How many state tensors a cell carries (LSTM: h and c)."""
    return _CELLS[cell][2]


class AttentionDecoder(keras.layers.Layer):
    """A recurrent decoder with Bahdanau attention inside the recurrence.

    At step t: ``c_t = attend(s_{t-1})``, ``s_t = cell([y_{t-1}; c_t], s_{t-1})``
    (Bahdanau et al. 2015, eq. 4-6). The context enters the recurrence, so the
    cell runs step by step (``tf.scan``), not as one fused RNN kernel.

    Encoder memory, keys and mask are call arguments (Keras 3's ``RNN`` has no
    ``constants=``), so the state of a call is all in its arguments.
    """

    def __init__(self, cell: str, units: int, attention_units: int, input_dim: int, memory_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.cell_type = cell
        self.units = units
        self.input_dim = input_dim
        self.memory_dim = memory_dim
        self.cell = _CELLS[cell][1](units, name=f"{cell}_cell")
        self.attention = BahdanauAttention(attention_units, query_dim=units, memory_dim=memory_dim, name="attention")
        # Padding in the target needs no mask here: the loss ignores pad ids,
        # and pads only ever follow the real tokens.
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None

    def build(self, *args, **kwargs):
        # Variables must exist before the tf.scan loop runs the cell.
        if not self.cell.built:
            self.cell.build((None, self.input_dim + self.memory_dim))
        if not self.attention.built:
            self.attention.build()
        self.built = True

    def step(self, inputs, states, memory, keys, source_mask, training=None):
        """One step.

        Args:
            inputs: ``[batch, input_dim]``, the embedding of ``y_{t-1}``.
            states: list of ``[batch, units]`` (two for LSTM: h, c).
        Returns:
            output ``s_t [batch, units]``, new states, context ``[batch, memory_dim]``,
            attention weights ``[batch, src_len]``.
        """
        context, weights = self.attention(states[0], memory, keys, source_mask)
        output, new_states = self.cell(tf.concat([inputs, context], axis=-1), states, training=training)
        if not isinstance(new_states, (list, tuple)):
            new_states = [new_states]
        return output, list(new_states), context, weights

    def call(self, inputs, memory, keys, source_mask, initial_state, training=None):
        """Runs the decoder over a whole target prefix.

        Args:
            inputs: ``[batch, tgt_len, input_dim]`` target embeddings (teacher forcing).
            memory: ``[batch, src_len, memory_dim]``.
            keys: ``[batch, src_len, attention_units]``.
            source_mask: ``bool [batch, src_len]``.
            initial_state: list of ``[batch, units]``.
        Returns:
            outputs ``[batch, tgt_len, units]``, contexts ``[batch, tgt_len, memory_dim]``,
            attention ``[batch, tgt_len, src_len]``, and the final states (a list).
        """
        states = list(initial_state)
        if inputs.shape[1] == 1:
            # One step (the inference step model): no loop needed.
            output, states, context, weights = self.step(inputs[:, 0], states, memory, keys, source_mask, training)
            return output[:, None], context[:, None], weights[:, None], states

        def scan_step(carry, x):
            prev_states = list(carry[3:])
            output, new_states, context, weights = self.step(x, prev_states, memory, keys, source_mask, training)
            return (output, context, weights, *new_states)

        batch = tf.shape(inputs)[0]
        init = (
            tf.zeros([batch, self.units], inputs.dtype),
            tf.zeros([batch, self.memory_dim], inputs.dtype),
            tf.zeros([batch, tf.shape(memory)[1]], inputs.dtype),
            *states,
        )
        time_major = tf.transpose(inputs, [1, 0, 2])
        outputs, contexts, weights, *all_states = tf.scan(scan_step, time_major, initializer=init)
        to_batch_major = lambda t: tf.transpose(t, [1, 0, 2])  # noqa: E731
        final_states = [s[-1] for s in all_states]
        return to_batch_major(outputs), to_batch_major(contexts), to_batch_major(weights), final_states

    def compute_output_spec(self, inputs, memory, keys, source_mask, initial_state, training=None):
        batch, tgt_len = inputs.shape[0], inputs.shape[1]
        dtype = inputs.dtype
        return (
            keras.KerasTensor((batch, tgt_len, self.units), dtype),
            keras.KerasTensor((batch, tgt_len, self.memory_dim), dtype),
            keras.KerasTensor((batch, tgt_len, memory.shape[1]), dtype),
            [keras.KerasTensor((batch, self.units), dtype) for _ in initial_state],
        )


@dataclass
class Seq2Seq:
    """The three models that share one set of layers."""

    training: keras.Model
    encoder: keras.Model
    step: keras.Model
    attention: keras.Model
    config: ModelConfig
    src_vocab_size: int
    tgt_vocab_size: int


def build_models(config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int,
                 training_class: type[keras.Model] = keras.Model) -> Seq2Seq:
    """Builds the training, encoder and step models.

    ``training_class`` is the class of the training model (a ``keras.Model``
    subclass with its own ``train_step``, e.g. to log the gradient norm); it is
    called functional-style as ``training_class(inputs, outputs, name=...)``.

    Returns:
        ``training``: ``[source_ids [b, s], target_in [b, t]]`` -> logits ``[b, t, tgt_vocab]``.
        ``attention``: same inputs -> attention weights ``[b, t, s]`` (for tests and plots).
        ``encoder``: ``source_ids`` -> ``[memory [b, s, 2*enc], keys [b, s, att], mask [b, s], *s_0]``.
        ``step``: ``[prev_ids [b, 1], memory, keys, mask, *states]`` ->
        ``[logits [b, tgt_vocab], weights [b, s], *new_states]``.
    """
    rnn_class = _CELLS[config.cell][0]
    n_states = num_states(config.cell)
    memory_dim = 2 * config.encoder_units

    src_embedding = keras.layers.Embedding(src_vocab_size, config.embedding_dim, mask_zero=True, name="src_embedding")
    tgt_embedding = keras.layers.Embedding(tgt_vocab_size, config.embedding_dim, mask_zero=True, name="tgt_embedding")
    src_dropout = keras.layers.Dropout(config.dropout, name="src_dropout")
    tgt_dropout = keras.layers.Dropout(config.dropout, name="tgt_dropout")
    encoder_rnn = keras.layers.Bidirectional(
        rnn_class(config.encoder_units, return_sequences=True, return_state=True), name="encoder"
    )
    bridges = [keras.layers.Dense(config.decoder_units, activation="tanh", name=f"bridge_{i}") for i in range(n_states)]
    decoder = AttentionDecoder(
        config.cell, config.decoder_units, config.attention_units, config.embedding_dim, memory_dim, name="decoder"
    )
    out_dropout = keras.layers.Dropout(config.dropout, name="output_dropout")
    pre_output = keras.layers.Dense(config.decoder_units, activation="tanh", name="pre_output")
    output_layer = keras.layers.Dense(tgt_vocab_size, name="logits")

    # Encoder: source ids -> memory, keys, mask, initial decoder states.
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    embedded = src_dropout(src_embedding(source_ids))
    memory, *final = encoder_rnn(embedded)
    forward, backward = final[:n_states], final[n_states:]
    initial_states = [
        bridge(keras.layers.Concatenate()([f, b])) for bridge, f, b in zip(bridges, forward, backward)
    ]
    keys = decoder.attention.key_layer(memory)
    source_mask = keras.ops.not_equal(source_ids, 0)
    encoder = keras.Model(source_ids, [memory, keys, source_mask, *initial_states], name="encoder")

    def decode(target_ids, memory, keys, source_mask, states):
        y = tgt_dropout(tgt_embedding(target_ids))
        outputs, contexts, weights, new_states = decoder(y, memory, keys, source_mask, states)
        features = keras.layers.Concatenate()([outputs, contexts, y])
        logits = output_layer(pre_output(out_dropout(features)))
        return logits, weights, new_states

    # Training: teacher forcing over the whole shifted target.
    train_source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    enc_memory, enc_keys, enc_mask, *enc_states = encoder(train_source)
    logits, weights, _ = decode(target_in, enc_memory, enc_keys, enc_mask, enc_states)
    training = training_class([train_source, target_in], logits, name="seq2seq")
    attention = keras.Model([train_source, target_in], weights, name="seq2seq_attention")

    # One inference step: the same layers on a target of length 1.
    prev_ids = keras.Input(shape=(1,), dtype="int32", name="prev_ids")
    step_memory = keras.Input(shape=(None, memory_dim), name="memory")
    step_keys = keras.Input(shape=(None, config.attention_units), name="keys")
    step_mask = keras.Input(shape=(None,), dtype="bool", name="source_mask")
    step_states = [keras.Input(shape=(config.decoder_units,), name=f"state_{i}") for i in range(n_states)]
    step_logits, step_weights, new_states = decode(prev_ids, step_memory, step_keys, step_mask, step_states)
    step = keras.Model(
        [prev_ids, step_memory, step_keys, step_mask, *step_states],
        [step_logits[:, 0], step_weights[:, 0], *new_states],
        name="decoder_step",
    )
    return Seq2Seq(training, encoder, step, attention, config, src_vocab_size, tgt_vocab_size)
