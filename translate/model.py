"""The recurrent encoder-decoder with attention, in the Keras functional API.

    source ids ─ Embedding(mask_zero) ─ Dropout ─ N x RNN ─────────────────────────> memory h_j
                 (first layer or all bidirectional; dropout and optional residuals between layers)
                 top layer's final states ─ Dense(tanh), one per decoder state ──> s_0 (the bridge)
    target_in ─ Embedding ─ Dropout ─ Decoder (N cells + attention) ──> attentional vector h~_t
    h~_t ─ Dropout ─ Dense(vocab), or the target embedding transposed (tied) ──> logits

Three models are built from the *same* layer objects (no weight copying):

* ``training``: ``(source_ids, target_in)`` -> logits, for teacher forcing;
* ``encoder``: ``source_ids`` -> memory, attention keys, source mask, initial decoder states;
* ``step``: one decoder step, used by :mod:`translate.search`.

Where attention sits (``model.attention``):

* ``bahdanau``: inside the recurrence. The previous top state ``s_{t-1}`` is the
  query (with ``attention_query_input``, ``[s_{t-1}; y_{t-1}]``), the context
  ``c_t`` joins the first cell's input, and ``h~_t = tanh(W [s_t; c_t; y_{t-1}])``
  (Bahdanau et al. 2015, eq. 4-6 and appendix A.2.2, with tanh in place of
  maxout). The cells run step by step:
  for one GRU or LSTM layer in the hoisted loop of :mod:`translate.bahdanau`
  (everything that does not depend on ``s_{t-1}`` outside it, a written-out
  gradient), otherwise in a ``tf.scan``. The default placement.
* ``additive``, ``luong_dot``, ``luong_general``: after the RNN. The RNN runs
  over the whole target as Keras's own layers (fused kernels), the current top
  state ``s_t`` is the query, and ``h~_t = tanh(W_c [c_t; s_t])`` (Luong et
  al. 2015, eq. 5). ``additive`` is the placement of the TensorFlow tutorial.
  With ``input_feeding``, ``h~_{t-1}`` joins the first cell's input (Luong et
  al. 2015, sec. 3.3), so the cells run step by step again.
* ``none``: ``h~_t = tanh(W [s_t; y_{t-1}])``, a plain encoder-decoder
  (Sutskever et al. 2014; Cho et al. 2014) whose only view of the source is ``s_0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from translate import bahdanau_kernel
from translate.attention import make_attention
from translate.bahdanau import AttentionWeights, CellWeights, Memory, attentive_recurrence
from translate.config import ModelConfig, memory_size, output_size
from translate.gru import GRU

# Our GRU is Keras's with the input matmul taken out of the CPU time loop (translate/gru.py).
_RNNS = {
    "gru": (GRU, 1),
    "lstm": (keras.layers.LSTM, 2),
    "simple_rnn": (keras.layers.SimpleRNN, 1),
}


def _rnn_options(cell: str) -> dict:
    """Keyword arguments for a Keras RNN layer of ``cell``.

    On a CPU, Keras's LSTM and SimpleRNN compute in float32 under mixed
    precision too: each of their steps is a few small elementwise ops, which
    TensorFlow's CPU kernels run slower in bfloat16 than in float32 (the quick
    preset with LSTM and Luong dot took 88.6 ms a step with them in bfloat16,
    72.2 in float32: benchmarks/results/attention_speed_lstm_bf16_keras_lstm.json).
    Our GRU keeps the policy: its bfloat16 step is the faster one. The
    decoder casts their outputs back to its own compute dtype.
    """
    if cell == "gru" or tf.config.list_logical_devices("GPU"):
        return {}
    return {"dtype": "float32"}


def num_states(cell: str) -> int:
    """How many state tensors a cell carries (LSTM: h and c)."""
    return _RNNS[cell][1]


def decoder_state_sizes(config: ModelConfig) -> list[int]:
    """Sizes of the decoder's state tensors, in the order the step model takes them:
    each layer's states (bottom first), then ``h~_{t-1}`` when input feeding."""
    sizes = [config.decoder_units] * (config.decoder_layers * num_states(config.cell))
    return sizes + ([output_size(config)] if config.input_feeding else [])


class Decoder(keras.layers.Layer):
    """Stacked recurrent cells with attention; see the module docstring for the placements.

    Encoder memory, keys and mask are call arguments (Keras 3's ``RNN`` has no
    ``constants=``), and all recurrent state is a flat list of tensors, so the
    state of a call is all in its arguments.

    Args:
        config: the model config (cell, sizes, layers, attention, dropout).
        memory_dim: size of an encoder output ``h_j``.
    """

    def __init__(self, config: ModelConfig, memory_dim: int, **kwargs):
        super().__init__(**kwargs)
        rnn_class, self.n_states = _RNNS[config.cell]
        self.units = config.decoder_units
        self.embedding_dim = config.embedding_dim
        self.memory_dim = memory_dim
        self.output_dim = output_size(config)
        self.kind = config.attention
        self.input_feeding = config.input_feeding
        self.residual = config.residual
        self.dropout = config.dropout
        # Inside the recurrence, or fed back: the cells must run one step at a time.
        self.stepwise = self.kind == "bahdanau" or self.input_feeding
        # Off only to compare the hoisted loop with the plain tf.scan (tests/test_bahdanau.py).
        self.use_hoisted_loop = True
        # The hoisted loop's compiled kernel when it builds (translate/bahdanau_kernel.py); off: its tf.while_loop.
        self.use_kernel = True
        self.rnns = [
            rnn_class(
                self.units,
                return_sequences=True,
                return_state=True,
                name=f"{config.cell}_{i}",
                **_rnn_options(config.cell),
            )
            for i in range(config.decoder_layers)
        ]
        # With attention_query_input Bahdanau's query is [s_{t-1}; y_{t-1}]; after the RNN, s_t has read y_{t-1}.
        self.query_input = config.attention_query_input and self.kind == "bahdanau"
        query_dim = self.units + (self.embedding_dim if self.query_input else 0)
        self.attention = make_attention(
            self.kind, config.attention_units, query_dim, memory_dim, normalize=config.attention_normalize
        )
        self.attentional = keras.layers.Dense(self.output_dim, activation="tanh", name="attentional")
        self.layer_dropout = keras.layers.Dropout(self.dropout, name="layer_dropout")
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        # Padding in the target needs no mask: the loss ignores pad ids, and
        # pads only ever follow the real tokens.
        return None

    def _first_input_dim(self) -> int:
        extra = self.memory_dim if self.kind == "bahdanau" else self.output_dim if self.input_feeding else 0
        return self.embedding_dim + extra

    def _feature_dim(self) -> int:
        if self.kind == "none":
            return self.units + self.embedding_dim
        if self.kind == "bahdanau":
            return self.units + self.memory_dim + self.embedding_dim
        return self.units + self.memory_dim

    def build(self, *args, **kwargs):
        # Variables must exist before a tf.scan loop runs the cells.
        for i, rnn in enumerate(self.rnns):
            if not rnn.built:
                rnn.build((None, None, self._first_input_dim() if i == 0 else self.units))
        if self.attention is not None and not self.attention.built:
            self.attention.build()
        if not self.attentional.built:
            self.attentional.build((None, self._feature_dim()))
        self.built = True

    def _split(self, states):
        """Flat states -> per-layer lists, and ``h~_{t-1}`` (None without input feeding)."""
        n = self.n_states
        layers = [list(states[i * n : (i + 1) * n]) for i in range(len(self.rnns))]
        return layers, (states[-1] if self.input_feeding else None)

    def _dropout_masks(self, inputs, training):
        """One mask per sequence between stacked layers (Gal and Ghahramani 2016), the
        same in the step-by-step and the fused paths; None when there is no dropout."""
        if not training or self.dropout == 0 or len(self.rnns) == 1:
            return None
        ones = tf.ones([tf.shape(inputs)[0], self.units], inputs.dtype)
        return [self.layer_dropout(ones, training=True) for _ in self.rnns[1:]]

    def _output(self, s, y, memory, keys, source_mask, context=None):
        """``h~`` and the attention weights, from the top RNN output ``s`` (one step or all)."""
        if self.attention is None:
            length = tf.shape(memory)[1]
            weights = tf.zeros(tf.concat([tf.shape(s)[:-1], [length]], axis=0), s.dtype)
            return self.attentional(tf.concat([s, y], axis=-1)), weights
        if self.kind == "bahdanau":
            return self.attentional(tf.concat([s, context, y], axis=-1)), None
        context, weights = self.attention(s, memory, keys, source_mask)
        return self.attentional(tf.concat([context, s], axis=-1)), weights

    def step(self, y, states, memory, keys, source_mask, masks=None, training=None):
        """One decoder step.

        Args:
            y: ``[batch, embedding_dim]``, the embedding of ``y_{t-1}``.
            states: flat list, see :func:`decoder_state_sizes`.
            memory: ``[batch, src_len, memory_dim]``; keys: ``[batch, src_len, key_dim]``;
            source_mask: ``bool [batch, src_len]``.
            masks: dropout masks ``[batch, units]`` between layers, or None.
        Returns:
            ``h~_t [batch, output_dim]``, weights ``[batch, src_len]``, new states (flat list).
        """
        layer_states, feed = self._split(states)
        context = weights = None
        if self.kind == "bahdanau":
            query = layer_states[-1][0]
            if self.query_input:
                query = tf.concat([query, y], axis=-1)
            context, weights = self.attention(query, memory, keys, source_mask)
            x = tf.concat([y, context], axis=-1)
        elif self.input_feeding:
            x = tf.concat([y, feed], axis=-1)
        else:
            x = y
        new_states = []
        for i, rnn in enumerate(self.rnns):
            layer_input = x if i == 0 or masks is None else x * masks[i - 1]
            x_next, cell_states = rnn.cell(layer_input, layer_states[i], training=training)
            # A cell kept in float32 under mixed precision (_rnn_options) answers in float32.
            x_next = tf.cast(x_next, y.dtype)
            cell_states = [tf.cast(c, y.dtype) for c in tf.nest.flatten(cell_states)]
            if self.residual and i > 0:
                x_next = x_next + x
            new_states += cell_states
            x = x_next
        attentional, output_weights = self._output(x, y, memory, keys, source_mask, context)
        weights = output_weights if weights is None else weights
        return attentional, weights, new_states + ([attentional] if self.input_feeding else [])

    def call(self, inputs, memory, keys, source_mask, initial_state, training=None):
        """Runs the decoder over a whole target prefix (teacher forcing) or one step.

        Args:
            inputs: ``[batch, tgt_len, embedding_dim]`` target embeddings.
            memory: ``[batch, src_len, memory_dim]``.
            keys: ``[batch, src_len, key_dim]``.
            source_mask: ``bool [batch, src_len]``.
            initial_state: flat list, see :func:`decoder_state_sizes`.
        Returns:
            ``h~ [batch, tgt_len, output_dim]``, attention ``[batch, tgt_len, src_len]``
            (zeros for ``none``) and the final states (a flat list).
        """
        inputs = tf.identity(inputs)  # drops the Keras mask: see compute_mask
        states = list(initial_state)
        masks = self._dropout_masks(inputs, training)
        if inputs.shape[1] == 1:
            # One step (the inference step model): no loop needed.
            attentional, weights, states = self.step(inputs[:, 0], states, memory, keys, source_mask, masks, training)
            return attentional[:, None], weights[:, None], states
        if self._hoisted_bahdanau():
            return self._bahdanau_loop(inputs, states, memory, keys, source_mask)
        if self.stepwise:
            return self._scan(inputs, states, memory, keys, source_mask, masks, training)
        return self._fused(inputs, states, memory, keys, source_mask, masks, training)

    def _hoisted_bahdanau(self) -> bool:
        """Whether :func:`translate.bahdanau.attentive_recurrence` runs this decoder's teacher-forced loop:
        Bahdanau attention, one GRU (``reset_after``) or LSTM layer with Keras's default activations,
        no dropout inside the cell and no input feeding. Anything else runs :meth:`_scan`."""
        if self.kind != "bahdanau" or self.input_feeding or len(self.rnns) != 1 or not self.use_hoisted_loop:
            return False
        cell = self.rnns[0].cell
        if not (
            isinstance(cell, keras.layers.LSTMCell) or (isinstance(cell, keras.layers.GRUCell) and cell.reset_after)
        ):
            return False
        return (
            cell.use_bias
            and not cell.dropout
            and not cell.recurrent_dropout
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )

    def _bahdanau_loop(self, inputs, states, memory, keys, source_mask):
        """Teacher forcing with attention inside the recurrence, the loop-free parts hoisted
        (:mod:`translate.bahdanau`): the same results as :meth:`_scan`.

        ``inputs [batch, tgt_len, embedding_dim]``, the rest as :meth:`call`.
        """
        cell, dtype = self.rnns[0].cell, inputs.dtype
        kernel = tf.cast(cell.kernel, dtype)
        bias = tf.cast(cell.bias, dtype)
        units = self.units
        if self.n_states == 1:
            input_bias, recurrent_bias = tf.unstack(bias)
            # b'_z and b'_r add to the input projection; b'_h sits inside r_t * (...).
            bias = input_bias + tf.concat([recurrent_bias[: 2 * units], tf.zeros([units], dtype)], axis=0)
            candidate_bias, h0, cell0 = recurrent_bias[2 * units :], states[0], states[0]
        else:
            candidate_bias, (h0, cell0) = None, states
        time_major = tf.transpose(inputs, [1, 0, 2])
        projected = tf.einsum("tbe,eg->tbg", time_major, kernel[: self.embedding_dim]) + bias
        attention = self.attention
        query_kernel = tf.cast(attention.query_layer.kernel, dtype)
        # The y_{t-1} rows of the query's kernel act outside the loop: y_{t-1} W_y for every step at once.
        query_kernel, input_query = query_kernel[:units], query_kernel[units:]
        offsets = tf.einsum("tbe,ea->tba", time_major, input_query) if self.query_input else None
        out = attentive_recurrence(
            "gru" if self.n_states == 1 else "lstm",
            projected,
            h0,
            cell0,
            CellWeights(tf.cast(cell.recurrent_kernel, dtype), kernel[self.embedding_dim :], candidate_bias),
            AttentionWeights(query_kernel, attention.score_vector(dtype)),
            Memory(memory, keys, source_mask),
            query_offsets=offsets,
            kernel=bahdanau_kernel.load() if self.use_kernel else None,
        )
        s, context, weights = (tf.transpose(x, [1, 0, 2]) for x in (out.states, out.contexts, out.weights))
        attentional = self.attentional(tf.concat([s, context, inputs], axis=-1))
        final_states = [out.states[-1]] if self.n_states == 1 else [out.states[-1], out.final_cell]
        return attentional, weights, final_states

    def _scan(self, inputs, states, memory, keys, source_mask, masks, training):
        def scan_step(carry, y):
            attentional, weights, new_states = self.step(y, list(carry[2:]), memory, keys, source_mask, masks, training)
            # The grouped attention's reshapes lose a static batch size that the carry has.
            return tuple(tf.ensure_shape(x, c.shape) for x, c in zip((attentional, weights, *new_states), carry))

        batch = tf.shape(inputs)[0]
        init = (
            tf.zeros([batch, self.output_dim], inputs.dtype),
            tf.zeros([batch, tf.shape(memory)[1]], inputs.dtype),
            *states,
        )
        attentional, weights, *all_states = tf.scan(scan_step, tf.transpose(inputs, [1, 0, 2]), initializer=init)
        return (tf.transpose(attentional, [1, 0, 2]), tf.transpose(weights, [1, 0, 2]), [s[-1] for s in all_states])

    def _fused(self, inputs, states, memory, keys, source_mask, masks, training):
        layer_states, _ = self._split(states)
        x, final_states = inputs, []
        for i, rnn in enumerate(self.rnns):
            layer_input = x if i == 0 or masks is None else x * masks[i - 1][:, None, :]
            x_next, *layer_final = rnn(layer_input, initial_state=layer_states[i], training=training)
            x_next, layer_final = tf.cast(x_next, inputs.dtype), [tf.cast(f, inputs.dtype) for f in layer_final]
            x = x_next + x if self.residual and i > 0 else x_next
            final_states += layer_final
        attentional, weights = self._output(x, inputs, memory, keys, source_mask)
        return attentional, weights, final_states

    def compute_output_spec(self, inputs, memory, keys, source_mask, initial_state, training=None):
        batch, tgt_len = inputs.shape[0], inputs.shape[1]
        dtype = inputs.dtype
        return (
            keras.KerasTensor((batch, tgt_len, self.output_dim), dtype),
            keras.KerasTensor((batch, tgt_len, memory.shape[1]), dtype),
            [keras.KerasTensor((batch, s.shape[-1]), dtype) for s in initial_state],
        )


class TiedOutput(keras.layers.Layer):
    """Logits from the target embedding matrix: ``x E^T + b`` (Press and Wolf 2017).

    Args:
        embedding: the target ``keras.layers.Embedding``; its matrix ``E [vocab, dim]`` is shared.
    Call: ``[..., dim]`` -> ``[..., vocab]``.
    """

    def __init__(self, embedding: keras.layers.Embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.embedding.input_dim,), initializer="zeros", name="bias")
        self.built = True

    def call(self, x):
        matrix = tf.cast(self.embedding.embeddings, x.dtype)
        return tf.einsum("...d,vd->...v", x, matrix) + tf.cast(self.bias, x.dtype)


@dataclass
class Seq2Seq:
    """The models that share one set of layers."""

    training: keras.Model
    encoder: keras.Model
    step: keras.Model
    attention: keras.Model
    config: ModelConfig
    src_vocab_size: int
    tgt_vocab_size: int


def _encoder_stack(config: ModelConfig, embedded):
    """The encoder RNNs over ``embedded [batch, src_len, embedding_dim]``.

    Returns:
        memory ``[batch, src_len, memory_dim]`` and the top layer's final states,
        both directions joined: a list of ``[batch, memory_dim]`` (two for LSTM).
    """
    rnn_class, n_states = _RNNS[config.cell]
    x, finals = embedded, []
    for i in range(config.encoder_layers):
        both_ways = i == 0 or config.bidirectional == "all"
        rnn = rnn_class(
            config.encoder_units,
            return_sequences=True,
            return_state=True,
            name=f"encoder_{config.cell}_{i}",
            **_rnn_options(config.cell),
        )
        layer = keras.layers.Bidirectional(rnn, name=f"encoder_{i}") if both_ways else rnn
        layer_input = keras.layers.Dropout(config.dropout, name=f"encoder_dropout_{i}")(x) if i > 0 else x
        output, *finals = layer(layer_input)
        if config.residual and i > 0 and output.shape[-1] == x.shape[-1]:
            output = keras.layers.Add(name=f"encoder_residual_{i}")([output, x])
        x = output
        if both_ways:
            forward, backward = finals[:n_states], finals[n_states:]
            finals = [keras.layers.Concatenate()([f, b]) for f, b in zip(forward, backward)]
    return x, finals


def keep_bahdanau_loops_in_tensorflow(model: keras.Model) -> None:
    """Runs every Bahdanau decoder of ``model`` as its ``tf.while_loop``, not the compiled kernel
    (:mod:`translate.bahdanau_kernel`). Read when the train step is traced, so call it before the first step."""
    for layer in model._flatten_layers():
        if isinstance(layer, Decoder):
            layer.use_kernel = False


def build_models(
    config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, training_class: type[keras.Model] = keras.Model
) -> Seq2Seq:
    """Builds the training, encoder and step models.

    ``training_class`` is the class of the training model (a ``keras.Model``
    subclass with its own ``train_step``, e.g. to log the gradient norm); it is
    called functional-style as ``training_class(inputs, outputs, name=...)``.

    Returns:
        ``training``: ``[source_ids [b, s], target_in [b, t]]`` -> logits ``[b, t, tgt_vocab]`` (float32).
        ``attention``: same inputs -> attention weights ``[b, t, s]`` (for tests and plots).
        ``encoder``: ``source_ids`` -> ``[memory [b, s, m], keys [b, s, k], mask [b, s], *states]``.
        ``step``: ``[prev_ids [b, 1], memory, keys, mask, *states]`` ->
        ``[logits [b, tgt_vocab], weights [b, s], *new_states]``; states as :func:`decoder_state_sizes`.
    """
    memory_dim = memory_size(config)
    src_embedding = keras.layers.Embedding(src_vocab_size, config.embedding_dim, mask_zero=True, name="src_embedding")
    tgt_embedding = keras.layers.Embedding(tgt_vocab_size, config.embedding_dim, mask_zero=True, name="tgt_embedding")
    src_dropout = keras.layers.Dropout(config.dropout, name="src_dropout")
    tgt_dropout = keras.layers.Dropout(config.dropout, name="tgt_dropout")
    decoder = Decoder(config, memory_dim, name="decoder")
    bridges = [
        keras.layers.Dense(size, activation="tanh", name=f"bridge_{i}")
        for i, size in enumerate(decoder_state_sizes(config))
    ]
    out_dropout = keras.layers.Dropout(config.dropout, name="output_dropout")
    # Under mixed precision the output matmul runs in bfloat16 (the largest matmul of a step: 5x faster with
    # AMX, docs/decisions/precision-and-xla.md) and its logits are cast to float32 before the softmax.
    if config.tie_embeddings:
        output_layer = TiedOutput(tgt_embedding, name="logits")
    else:
        output_layer = keras.layers.Dense(tgt_vocab_size, name="logits")

    def to_logits(x):
        return keras.ops.cast(output_layer(out_dropout(x)), "float32")

    # Encoder: source ids -> memory, keys, mask, initial decoder states.
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    memory, finals = _encoder_stack(config, src_dropout(src_embedding(source_ids)))
    # Each decoder state starts from the encoder's final state of the same kind (h from h, c from c).
    n_states = num_states(config.cell)
    initial_states = [bridge(finals[i % n_states]) for i, bridge in enumerate(bridges)]
    if decoder.attention is not None:
        keys = decoder.attention.precompute_keys(memory)
    else:
        keys = keras.layers.Identity(name="no_keys")(memory)
    source_mask = keras.ops.not_equal(source_ids, 0)
    encoder = keras.Model(source_ids, [memory, keys, source_mask, *initial_states], name="encoder")

    def decode(target_ids, memory, keys, source_mask, states):
        y = tgt_dropout(tgt_embedding(target_ids))
        attentional, weights, new_states = decoder(y, memory, keys, source_mask, states)
        if target_ids.shape[1] == 1:
            # One step: [batch, dim] into the output layer is one fused matmul + bias;
            # [batch, 1, dim] would be a tensordot with the bias added apart.
            return to_logits(attentional[:, 0]), weights[:, 0], new_states
        return to_logits(attentional), weights, new_states

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
    step_keys = keras.Input(shape=(None, keys.shape[-1]), name="keys")
    step_mask = keras.Input(shape=(None,), dtype="bool", name="source_mask")
    step_states = [keras.Input(shape=(size,), name=f"state_{i}") for i, size in enumerate(decoder_state_sizes(config))]
    step_logits, step_weights, new_states = decode(prev_ids, step_memory, step_keys, step_mask, step_states)
    step = keras.Model(
        [prev_ids, step_memory, step_keys, step_mask, *step_states],
        [step_logits, step_weights, *new_states],
        name="decoder_step",
    )
    return Seq2Seq(training, encoder, step, attention, config, src_vocab_size, tgt_vocab_size)
