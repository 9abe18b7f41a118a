// The Bahdanau decoder's teacher-forced loop (translate/bahdanau.py) as two CPU kernels.
//
// translate/bahdanau.py runs the loop as a tf.while_loop of some forty small
// ops a step forward and fifty backward; on one CPU thread most of a step's
// time goes to running those ops one by one rather than to their arithmetic
// (docs/decisions/bahdanau-decoder.md). These kernels run the same loops, the
// same formulas in the same order, each step in one pass: the weight matmuls
// through Eigen, the attention over source positions and the cell's gates as
// plain loops over contiguous rows. translate/bahdanau_kernel.py builds this
// file with the compiler flags TensorFlow reports and loads it; the while loop
// stays the reference (tests/test_bahdanau_kernel.py compares the two).
//
// Shapes: T target steps, B sentences, U decoder units, G gates (3U for a
// Keras GRU with reset_after, 4U for an LSTM), A attention units, S source
// positions, M memory size (an encoder output h_j). Every tensor is float32,
// row-major, time-major where it has a time axis. With the ops' bf16_matmuls
// attribute (set under mixed precision) and a CPU with AMX, the loop's four
// weight matmuls multiply bfloat16 roundings of their operands on AMX tiles,
// with float32 sums; everything else stays float32.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <vector>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define TRANSLATE_AMX 1
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;
using ConstRowMap = Eigen::Map<const Eigen::RowVectorXf>;

const float* In(OpKernelContext* context, int i) { return context->input(i).flat<float>().data(); }

// Callers check context->status(), not the pointer: an empty output's data() may be null. (A replica that
// gets no sentences under tf.distribute has empty [T, 0, ...] outputs but a full [A] d_v.)
float* Out(OpKernelContext* context, int i, const TensorShape& shape) {
  Tensor* tensor = nullptr;
  auto status = context->allocate_output(i, shape, &tensor);
  if (!status.ok()) {
    context->SetStatus(status);
    return nullptr;
  }
  return tensor->flat<float>().data();
}

// out [B, N] += x [B, K] w [K, N], all row-major: the loop's four matmuls, whose B (the sentences of a batch)
// is small and whose w is the same at every step. Eigen's general product packs w into blocks on every call,
// and in a profile of this loop the packing cost as much as the multiplications; here w is packed once per
// loop (Packed: panels of kPanel columns, each panel's K rows contiguous, so a step reads them in order),
// and each panel is multiplied kRows rows of x at a time with the sums in registers. GCC's vector extension
// maps Vector16 to one AVX-512 register, or two AVX2 ones.
typedef float Vector16 __attribute__((vector_size(64)));
constexpr int64_t kPanel = 32;
#if defined(__AVX512F__)
constexpr int kRows = 8;  // 16 accumulators of the 32 registers
#else
constexpr int kRows = 4;
#endif

struct Packed {
  Packed(const float* w, int64_t K, int64_t N) : w(w), K(K), N(N), whole(N / kPanel * kPanel), panels(whole * K) {
    for (int64_t n = 0; n < whole; n += kPanel) {
      for (int64_t k = 0; k < K; ++k) std::copy(w + k * N + n, w + k * N + n + kPanel, panels.data() + (n * K + k * kPanel));
    }
  }
  const float* w;  // the last N % kPanel columns are read from here
  int64_t K, N, whole;
  std::vector<float> panels;
};

template <int R>
void Panel(const float* x, int64_t K, const float* panel, int64_t N, float* out) {
  Vector16 sums[R][2];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 2; ++j) __builtin_memcpy(&sums[r][j], out + r * N + 16 * j, sizeof(Vector16));
  }
  for (int64_t k = 0; k < K; ++k) {
    Vector16 row[2];
    for (int j = 0; j < 2; ++j) __builtin_memcpy(&row[j], panel + k * kPanel + 16 * j, sizeof(Vector16));
    for (int r = 0; r < R; ++r) {
      const float xv = x[r * K + k];
      for (int j = 0; j < 2; ++j) sums[r][j] += xv * row[j];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 2; ++j) __builtin_memcpy(out + r * N + 16 * j, &sums[r][j], sizeof(Vector16));
  }
}

// out [r, from:N] += x [r, K] w [K, from:N] for the rows r in [b0, b1): the columns past a packed layout's
// whole blocks, in plain float32.
void MatMulAddColumns(const float* x, int64_t b0, int64_t b1, int64_t K, const float* w, int64_t N, int64_t from,
                      float* out) {
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t k = 0; k < K; ++k) {
      const float xv = x[b * K + k];
      for (int64_t n = from; n < N; ++n) out[b * N + n] += xv * w[k * N + n];
    }
  }
}

void MatMulAdd(const float* x, int64_t B, const Packed& w, float* out) {
  const int64_t K = w.K, N = w.N;
  for (int64_t n = 0; n < w.whole; n += kPanel) {
    const float* panel = w.panels.data() + n * K;
    int64_t b = 0;
    for (; b + kRows <= B; b += kRows) Panel<kRows>(x + b * K, K, panel, N, out + b * N + n);
    for (; b < B; ++b) Panel<1>(x + b * K, K, panel, N, out + b * N + n);
  }
  MatMulAddColumns(x, 0, B, K, w.w, N, w.whole, out);  // the last N % kPanel columns
}

#ifdef TRANSLATE_AMX
// out [B, N] += x [B, K] w [K, N] on AMX tiles (Intel's Advanced Matrix Extensions): x and w rounded to
// bfloat16, products summed in float32. w is packed once per loop into the tiles' layout: for each block of
// 16 columns and 32 rows, 16 rows of 16 column pairs (w[2p][n], w[2p + 1][n]), rows past K zero. Columns past
// the last whole block of 16 are multiplied in float32.
constexpr int64_t kTileRows = 16, kTileColumns = 16, kTileDepth = 32;

uint16_t ToBfloat16(float value) {  // round to nearest even; a NaN stays a NaN
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

// x [K] -> out [K] in bfloat16, 32 at a time with AVX512-BF16's conversion (round to nearest even, as
// ToBfloat16, but subnormals flushed to zero), the rest one by one.
void ToBfloat16Row(const float* x, int64_t K, uint16_t* out) {
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    // The second operand fills the low 16 lanes.
    const __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
    _mm512_storeu_si512(out + k, reinterpret_cast<__m512i>(pair));
  }
  for (; k < K; ++k) out[k] = ToBfloat16(x[k]);
}

// Linux hands out AMX's tile registers to a process only on request (arch_prctl, once; later calls are no-ops).
bool AmxPermitted() {
  static const bool permitted = [] {
    constexpr int kRequestPermission = 0x1023, kTileData = 18;  // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return permitted;
}

struct TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

struct PackedTiles {
  PackedTiles(const float* w, int64_t K, int64_t N)
      : w(w), K(K), N(N), depth((K + kTileDepth - 1) / kTileDepth), whole(N / kTileColumns * kTileColumns),
        tiles(whole * depth * kTileDepth, 0) {
    for (int64_t n0 = 0; n0 < whole; n0 += kTileColumns) {
      uint16_t* block = tiles.data() + n0 * depth * kTileDepth;
      for (int64_t k = 0; k < K; ++k) {
        uint16_t* row = block + (k / kTileDepth) * kTileDepth * kTileColumns + (k % kTileDepth) / 2 * 32 + k % 2;
        for (int64_t c = 0; c < kTileColumns; ++c) row[2 * c] = ToBfloat16(w[k * N + n0 + c]);
      }
    }
  }
  const float* w;
  int64_t K, N, depth, whole;
  std::vector<uint16_t> tiles;  // [N / 16][depth][16 pairs][16 columns][2]
};

void MatMulAddTiles(const float* x, int64_t B, const PackedTiles& w, float* out) {
  const int64_t K = w.K, N = w.N, padded = w.depth * kTileDepth;
  // x's rows in bfloat16, zero past K; one buffer per thread, reused from step to step.
  thread_local std::vector<uint16_t> rows;
  rows.assign(kTileRows * padded, 0);
  for (int64_t b0 = 0; b0 < B; b0 += kTileRows) {
    const int64_t m = std::min(kTileRows, B - b0);
    for (int64_t r = 0; r < m; ++r) ToBfloat16Row(x + (b0 + r) * K, K, rows.data() + r * padded);
    TileConfig config;
    config.rows[0] = config.rows[1] = static_cast<uint8_t>(m);  // 0: the sums, 1: rows of x
    config.rows[2] = kTileDepth / 2;                              // 2: a block of w
    config.bytes_per_row[0] = config.bytes_per_row[1] = config.bytes_per_row[2] = 64;
    _tile_loadconfig(&config);
    for (int64_t n0 = 0; n0 < w.whole; n0 += kTileColumns) {
      float* sums = out + b0 * N + n0;
      const uint16_t* block = w.tiles.data() + n0 * w.depth * kTileDepth;
      _tile_loadd(0, sums, N * sizeof(float));
      for (int64_t d = 0; d < w.depth; ++d) {
        _tile_loadd(1, rows.data() + d * kTileDepth, padded * sizeof(uint16_t));
        _tile_loadd(2, block + d * kTileDepth * kTileColumns, 64);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sums, N * sizeof(float));
    }
    _tile_release();
    MatMulAddColumns(x, b0, b0 + m, K, w.w, N, w.whole, out);  // the last N % 16 columns
  }
}
#endif

// A loop's weight matrix w [K, N], packed for out [B, N] += x [B, K] w: in float32 panels, or (tiles, where
// built with AMX and asked for) in bfloat16 tiles.
class Weights {
 public:
  Weights(const float* w, int64_t K, int64_t N, bool tiles) {
#ifdef TRANSLATE_AMX
    if (tiles && AmxPermitted()) {
      tiles_.emplace_back(w, K, N);
      return;
    }
#endif
    panels_.emplace_back(w, K, N);
  }
  void MultiplyAdd(const float* x, int64_t B, float* out) const {
#ifdef TRANSLATE_AMX
    if (!tiles_.empty()) return MatMulAddTiles(x, B, tiles_[0], out);
#endif
    MatMulAdd(x, B, panels_[0], out);
  }

 private:
  std::vector<Packed> panels_;
#ifdef TRANSLATE_AMX
  std::vector<PackedTiles> tiles_;
#endif
};

// A row-major copy of w [rows, columns]'s transpose, for products with w^T.
std::vector<float> Transposed(const float* w, int64_t rows, int64_t columns) {
  std::vector<float> t(rows * columns);
  MatrixMap(t.data(), columns, rows) = ConstMatrixMap(w, rows, columns).transpose();
  return t;
}

// Softmax over one sentence's source positions, exactly 0 where mask is
// false; with no true position, uniform (as tf.nn.softmax of tf.where(mask,
// scores, lowest) in translate/bahdanau.py).
void MaskedSoftmax(const float* scores, const bool* mask, int64_t S, float* alpha) {
  float top = std::numeric_limits<float>::lowest();
  bool any = false;
  for (int64_t s = 0; s < S; ++s) {
    if (mask[s]) {
      top = std::max(top, scores[s]);
      any = true;
    }
  }
  if (!any) {
    std::fill(alpha, alpha + S, 1.0f / static_cast<float>(S));
    return;
  }
  float total = 0.0f;
  for (int64_t s = 0; s < S; ++s) {
    alpha[s] = mask[s] ? std::exp(scores[s] - top) : 0.0f;
    total += alpha[s];
  }
  for (int64_t s = 0; s < S; ++s) alpha[s] /= total;
}

// Positions from the last real one on are padding: the loops stop there. -> [B]
std::vector<int64_t> Lengths(const bool* mask, int64_t B, int64_t S) {
  std::vector<int64_t> lengths(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      if (mask[b * S + s]) lengths[b] = s + 1;
    }
  }
  return lengths;
}

// e_tj = v^T tanh(q_t + U h_j), alpha_t = softmax_j(e_tj), c_t = sum_j alpha_tj h_j, for one sentence of
// length L (its first L positions; the rest are padding). query [A], keys [S, A], values [S, M], mask [S]
// -> alpha [S], context [M]. Each score is one pass over its row: the tanh is never stored.
void Attend(const float* query, const float* keys, const float* values, const bool* mask, const float* v, int64_t S,
            int64_t L, int64_t A, int64_t M, float* scores, float* alpha, float* context) {
  ConstArrayMap q(query, A), score_vector(v, A);
  for (int64_t s = 0; s < L; ++s) scores[s] = ((q + ConstArrayMap(keys + s * A, A)).tanh() * score_vector).sum();
  std::fill(scores + L, scores + S, 0.0f);
  MaskedSoftmax(scores, mask, S, alpha);
  VectorMap(context, M).noalias() = ConstMatrixMap(values, S, M).transpose() * ConstVectorMap(alpha, S);
}

// The score's backward for one source position j of one step, given tanh(q_t + U h_j) (h) and d e_tj:
// d pre = d e_tj v (1 - tanh^2) goes to d U h_j and to the query's gradient, and d v gets d e_tj tanh.
inline void ScoreBackward(const float* __restrict__ h, const float* __restrict__ v, float d_e, int64_t A,
                          float* __restrict__ d_v, float* __restrict__ d_key, float* __restrict__ d_query) {
  for (int64_t a = 0; a < A; ++a) {
    const float d_pre = d_e * v[a] * (1.0f - h[a] * h[a]);
    d_v[a] += d_e * h[a];
    d_key[a] += d_pre;
    d_query[a] += d_pre;
  }
}

// Runs fn(b0, b1) over shards of the batch's sentences on TensorFlow's intra-op threads, kRows sentences or
// more a shard (one shard, on this thread, when TensorFlow has one thread: a process pinned to one core).
void InShards(OpKernelContext* context, int64_t B, int64_t cost_per_sentence,
              const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t blocks = (B + kRows - 1) / kRows;
  context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
      blocks, cost_per_sentence * kRows,
      [&](int64_t first, int64_t last) { fn(first * kRows, std::min(last * kRows, B)); });
}

class ForwardOp : public OpKernel {
 public:
  explicit ForwardOp(OpKernelConstruction* construction) : OpKernel(construction) {
    OP_REQUIRES_OK(construction, construction->GetAttr("gru", &gru_));
    OP_REQUIRES_OK(construction, construction->GetAttr("has_offsets", &has_offsets_));
    OP_REQUIRES_OK(construction, construction->GetAttr("bf16_matmuls", &bf16_matmuls_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& values = context->input(7);
    const int64_t T = projected.dim_size(0), B = projected.dim_size(1), G = projected.dim_size(2);
    const int64_t U = context->input(1).dim_size(1), A = context->input(6).dim_size(0);
    const int64_t S = values.dim_size(1), M = values.dim_size(2), F = G + A;
    OP_REQUIRES(context, G == (gru_ ? 3 : 4) * U,
                tensorflow::errors::InvalidArgument("gates must be ", gru_ ? 3 : 4, " times the units"));
    OP_REQUIRES(context, context->input(3).dim_size(0) == U && context->input(3).dim_size(1) == F,
                tensorflow::errors::InvalidArgument("fused kernel must be [units, gates + attention units]"));
    OP_REQUIRES(context, context->input(4).dim_size(0) == M && context->input(4).dim_size(1) == G,
                tensorflow::errors::InvalidArgument("context kernel must be [memory, gates]"));
    const float *x_in = In(context, 0), *h0 = In(context, 1), *c0 = In(context, 2), *fused = In(context, 3);
    const float *context_kernel = In(context, 4), *candidate_bias = In(context, 5), *v = In(context, 6);
    const float *memory = In(context, 7), *keys = In(context, 8), *offsets = In(context, 10);
    const bool* mask = context->input(9).flat<bool>().data();
    const int64_t K = (gru_ ? 4 : 5) * U;
    float* states = Out(context, 0, TensorShape({T, B, U}));
    float* cells = Out(context, 1, TensorShape({T, B, U}));
    float* contexts = Out(context, 2, TensorShape({T, B, M}));
    float* weights = Out(context, 3, TensorShape({T, B, S}));
    float* saved = Out(context, 4, TensorShape({T, B, K}));
    float* queries = Out(context, 5, TensorShape({T, B, A}));
    if (!context->status().ok()) return;

    std::vector<float> h(h0, h0 + B * U), c(c0, c0 + B * U), both(B * F), x_pre(B * G);
    const std::vector<int64_t> lengths = Lengths(mask, B, S);
    const Weights fused_packed(fused, U, F, bf16_matmuls_), context_kernel_packed(context_kernel, M, G, bf16_matmuls_);
    // Sentences [b0, b1) through all steps: no sentence reads another's rows, so shards run on their own.
    auto rows = [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      std::vector<float> scores(S);
      for (int64_t t = 0; t < T; ++t) {
        // s_{t-1} [R | W]: the gates' recurrent part and the attention query in one matmul.
        std::fill(both.begin() + b0 * F, both.begin() + b1 * F, 0.0f);
        fused_packed.MultiplyAdd(h.data() + b0 * U, n, both.data() + b0 * F);
        float* context_t = contexts + t * B * M;
        float* alpha_t = weights + t * B * S;
        for (int64_t b = b0; b < b1; ++b) {
          // The query W s_{t-1} (+ y_{t-1} W_y), kept for the backward pass.
          float* query = queries + (t * B + b) * A;
          ArrayMap q(query, A);
          q = ConstArrayMap(both.data() + b * F + G, A);
          if (has_offsets_) q += ConstArrayMap(offsets + (t * B + b) * A, A);
          Attend(query, keys + b * S * A, memory + b * S * M, mask + b * S, v, S, lengths[b], A, M, scores.data(),
                 alpha_t + b * S, context_t + b * M);
        }
        // c_t W_c, then the input projection y_{t-1} W_y + b computed before the loop.
        std::copy(x_in + (t * B + b0) * G, x_in + (t * B + b1) * G, x_pre.begin() + b0 * G);
        context_kernel_packed.MultiplyAdd(context_t + b0 * M, n, x_pre.data() + b0 * G);
        for (int64_t b = b0; b < b1; ++b) {
          const float* xb = x_pre.data() + b * G;
          const float* hb = both.data() + b * F;
          float* keep = saved + (t * B + b) * K;
          ArrayMap state(h.data() + b * U, U), cell(c.data() + b * U, U);
          if (gru_) {
            // Keras's GRU, reset_after: z, r, candidate.
            ArrayMap zr(keep, 2 * U), candidate(keep + 2 * U, U), recurrent(keep + 3 * U, U);
            zr = (ConstArrayMap(xb, 2 * U) + ConstArrayMap(hb, 2 * U)).logistic();
            recurrent = ConstArrayMap(hb + 2 * U, U) + ConstArrayMap(candidate_bias, U);
            candidate = (ConstArrayMap(xb + 2 * U, U) + zr.tail(U) * recurrent).tanh();
            state = candidate + zr.head(U) * (state - candidate);
            cell = state;
          } else {
            // Keras's LSTM: i, f, g, o.
            ArrayMap gates(keep, 4 * U), squashed(keep + 4 * U, U);
            gates = ConstArrayMap(xb, G) + ConstArrayMap(hb, G);
            gates.head(2 * U) = gates.head(2 * U).logistic();
            gates.segment(2 * U, U) = gates.segment(2 * U, U).tanh();
            gates.tail(U) = gates.tail(U).logistic();
            cell = gates.segment(U, U) * cell + gates.head(U) * gates.segment(2 * U, U);
            squashed = cell.tanh();
            state = gates.tail(U) * squashed;
          }
        }
        std::copy(h.begin() + b0 * U, h.begin() + b1 * U, states + (t * B + b0) * U);
        std::copy(c.begin() + b0 * U, c.begin() + b1 * U, cells + (t * B + b0) * U);
      }
    };
    InShards(context, B, T * F * U, rows);
  }

 private:
  bool gru_ = true;
  bool has_offsets_ = false;
  bool bf16_matmuls_ = false;
};

class BackwardOp : public OpKernel {
 public:
  explicit BackwardOp(OpKernelConstruction* construction) : OpKernel(construction) {
    OP_REQUIRES_OK(construction, construction->GetAttr("gru", &gru_));
    OP_REQUIRES_OK(construction, construction->GetAttr("bf16_matmuls", &bf16_matmuls_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& d_states_in = context->input(0);
    const Tensor& values = context->input(8);
    const int64_t T = d_states_in.dim_size(0), B = d_states_in.dim_size(1), U = d_states_in.dim_size(2);
    const int64_t S = values.dim_size(1), M = values.dim_size(2), A = context->input(10).dim_size(0);
    const int64_t G = context->input(12).dim_size(1), F = G + A, K = (gru_ ? 4 : 5) * U;
    OP_REQUIRES(context, G == (gru_ ? 3 : 4) * U,
                tensorflow::errors::InvalidArgument("gates must be ", gru_ ? 3 : 4, " times the units"));
    OP_REQUIRES(context, context->input(5).dim_size(2) == K,
                tensorflow::errors::InvalidArgument("saved must have ", K, " columns"));
    const float *d_states = In(context, 0), *d_contexts = In(context, 1), *d_weights = In(context, 2);
    const float *init_h = In(context, 3), *init_cell = In(context, 4), *saved = In(context, 5);
    const float *states = In(context, 14), *cells = In(context, 15), *h0 = In(context, 16), *cell0 = In(context, 17);
    const float *queries = In(context, 6), *weights = In(context, 7), *memory = In(context, 8);
    const float *keys = In(context, 9), *v = In(context, 10), *fused = In(context, 11);
    const float* context_kernel = In(context, 12);
    float* d_h0 = Out(context, 0, TensorShape({B, U}));
    float* d_cell0 = Out(context, 1, TensorShape({B, U}));
    float* d_keys = Out(context, 2, TensorShape({B, S, A}));
    float* d_v = Out(context, 3, TensorShape({A}));
    float* d_xs = Out(context, 4, TensorShape({T, B, G}));
    float* d_fused = Out(context, 5, TensorShape({T, B, F}));
    float* d_context_all = Out(context, 6, TensorShape({T, B, M}));
    if (!context->status().ok()) return;
    std::fill(d_keys, d_keys + B * S * A, 0.0f);
    std::fill(d_v, d_v + A, 0.0f);

    std::vector<float> d_h(init_h, init_h + B * U), d_cell(init_cell, init_cell + B * U), direct(B * U, 0.0f);
    std::vector<float> d_new(B * U);
    // A sentence without real positions attends uniformly but passes no gradient to its scores (as tf.where).
    const std::vector<int64_t> lengths = Lengths(context->input(13).flat<bool>().data(), B, S);
    const std::vector<float> fused_transposed = Transposed(fused, U, F);
    const std::vector<float> context_kernel_transposed = Transposed(context_kernel, M, G);
    const Weights fused_t(fused_transposed.data(), F, U, bf16_matmuls_);
    const Weights context_kernel_t(context_kernel_transposed.data(), G, M, bf16_matmuls_);
    std::mutex d_v_lock;
    auto rows = [&](int64_t b0, int64_t b1) {
      const int64_t n = b1 - b0;
      std::vector<float> d_alpha(S), hidden(A);
      Eigen::VectorXf d_v_sum = Eigen::VectorXf::Zero(A);
      for (int64_t t = T - 1; t >= 0; --t) {
        float* d_x_t = d_xs + t * B * G;
        float* d_both_t = d_fused + t * B * F;
        for (int64_t b = b0; b < b1; ++b) {
          const float* keep = saved + (t * B + b) * K;
          ArrayMap d_n(d_new.data() + b * U, U), d_c(d_cell.data() + b * U, U), d_direct(direct.data() + b * U, U);
          d_n = ConstArrayMap(d_states + (t * B + b) * U, U) + ConstArrayMap(d_h.data() + b * U, U);
          float* dx = d_x_t + b * G;
          float* dr = d_both_t + b * F;
          if (gru_) {
            // new = candidate + z (s_{t-1} - candidate), candidate = tanh(x_c + r (R_h s_{t-1} + b'_h)).
            ConstArrayMap z(keep, U), r(keep + U, U), candidate(keep + 2 * U, U), recurrent(keep + 3 * U, U);
            ConstArrayMap previous(t > 0 ? states + ((t - 1) * B + b) * U : h0 + b * U, U);
            ArrayMap d_z(dx, U), d_r(dx + U, U), d_candidate(dx + 2 * U, U);
            d_candidate = d_n * (1.0f - z) * (1.0f - candidate * candidate);
            d_z = d_n * (previous - candidate) * z * (1.0f - z);
            d_r = d_candidate * recurrent * r * (1.0f - r);
            std::copy(dx, dx + 2 * U, dr);
            ArrayMap(dr + 2 * U, U) = d_candidate * r;
            d_direct = d_n * z;
          } else {
            // c_t = f c_{t-1} + i g, s_t = o tanh(c_t).
            ConstArrayMap i(keep, U), f(keep + U, U), g(keep + 2 * U, U), o(keep + 3 * U, U), squashed(keep + 4 * U, U);
            ConstArrayMap previous_cell(t > 0 ? cells + ((t - 1) * B + b) * U : cell0 + b * U, U);
            d_c += d_n * o * (1.0f - squashed * squashed);
            ArrayMap(dx, U) = d_c * g * i * (1.0f - i);
            ArrayMap(dx + U, U) = d_c * previous_cell * f * (1.0f - f);
            ArrayMap(dx + 2 * U, U) = d_c * i * (1.0f - g * g);
            ArrayMap(dx + 3 * U, U) = d_n * squashed * o * (1.0f - o);
            std::copy(dx, dx + G, dr);
            d_c *= f;
          }
        }
        // d c_t = the gradient from after the loop + d x_t W_c^T.
        float* d_context_t = d_context_all + t * B * M;
        std::copy(d_contexts + (t * B + b0) * M, d_contexts + (t * B + b1) * M, d_context_t + b0 * M);
        context_kernel_t.MultiplyAdd(d_x_t + b0 * G, n, d_context_t + b0 * M);
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t L = lengths[b];
          const float* alpha = weights + (t * B + b) * S;
          // d alpha_tj = the gradient from after the loop + h_j . d c_t; then the softmax's backward, which is 0
          // wherever alpha is (padding).
          VectorMap d_a(d_alpha.data(), L);
          d_a.noalias() = ConstMatrixMap(memory + b * S * M, L, M) * ConstVectorMap(d_context_t + b * M, M);
          d_a += ConstVectorMap(d_weights + (t * B + b) * S, L);
          ConstVectorMap a(alpha, L);
          d_a = (a.array() * (d_a.array() - a.dot(d_a))).matrix();  // d e_tj
          // The tanh recomputed one row at a time, then the score's backward in the same pass over the row.
          float* d_query = d_both_t + b * F + G;
          std::fill(d_query, d_query + A, 0.0f);
          ConstArrayMap q(queries + (t * B + b) * A, A);
          for (int64_t s = 0; s < L; ++s) {
            if (d_a[s] == 0.0f) continue;  // alpha is 0 there (padding): no gradient
            ArrayMap(hidden.data(), A) = (q + ConstArrayMap(keys + (b * S + s) * A, A)).tanh();
            ScoreBackward(hidden.data(), v, d_a[s], A, d_v_sum.data(), d_keys + (b * S + s) * A, d_query);
          }
        }
        // d s_{t-1} = [d gates' recurrent part | d query] [R | W]^T + the cell's direct part.
        std::copy(direct.begin() + b0 * U, direct.begin() + b1 * U, d_h.begin() + b0 * U);
        fused_t.MultiplyAdd(d_both_t + b0 * F, n, d_h.data() + b0 * U);
      }
      std::lock_guard<std::mutex> hold(d_v_lock);
      VectorMap(d_v, A) += d_v_sum;
    };
    InShards(context, B, T * F * U, rows);
    std::copy(d_h.begin(), d_h.end(), d_h0);
    std::copy(d_cell.begin(), d_cell.end(), d_cell0);
  }

 private:
  bool gru_ = true;
  bool bf16_matmuls_ = false;
};

Status ForwardShape(InferenceContext* c) {
  ShapeHandle projected, h0, values;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h0));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(7), 3, &values));
  bool gru = true;
  TF_RETURN_IF_ERROR(c->GetAttr("gru", &gru));
  DimensionHandle T = c->Dim(projected, 0), B = c->Dim(projected, 1), U = c->Dim(h0, 1), K;
  TF_RETURN_IF_ERROR(c->Multiply(U, gru ? 4 : 5, &K));
  c->set_output(0, c->MakeShape({T, B, U}));
  c->set_output(1, c->MakeShape({T, B, U}));
  c->set_output(2, c->MakeShape({T, B, c->Dim(values, 2)}));
  c->set_output(3, c->MakeShape({T, B, c->Dim(values, 1)}));
  c->set_output(4, c->MakeShape({T, B, K}));
  c->set_output(5, c->MakeShape({T, B, c->Dim(c->input(6), 0)}));
  return Status();
}

Status BackwardShape(InferenceContext* c) {
  ShapeHandle d_states, fused, context_kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &d_states));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(11), 2, &fused));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(12), 2, &context_kernel));
  DimensionHandle T = c->Dim(d_states, 0), B = c->Dim(d_states, 1);
  c->set_output(0, c->input(3));
  c->set_output(1, c->input(4));
  c->set_output(2, c->input(9));
  c->set_output(3, c->input(10));
  c->set_output(4, c->MakeShape({T, B, c->Dim(context_kernel, 1)}));
  c->set_output(5, c->MakeShape({T, B, c->Dim(fused, 1)}));
  c->set_output(6, c->input(1));
  return Status();
}

}  // namespace

REGISTER_OP("TranslateBahdanauForward")
    .Attr("gru: bool")
    .Attr("has_offsets: bool")
    .Attr("bf16_matmuls: bool = false")  // the weight matmuls in bfloat16 on AMX, where built with it
    .Input("projected: float")       // [T, B, G]: y_{t-1} W_y + b
    .Input("h0: float")              // [B, U]
    .Input("cell0: float")           // [B, U]: an LSTM's c_0 (a GRU ignores it)
    .Input("fused: float")           // [U, G + A]: [R | W]
    .Input("context_kernel: float")  // [M, G]: W_c
    .Input("candidate_bias: float")  // [U]: a GRU's b'_h (an LSTM ignores it)
    .Input("v: float")               // [A]
    .Input("values: float")          // [B, S, M]: h_j
    .Input("keys: float")            // [B, S, A]: U h_j + b
    .Input("mask: bool")             // [B, S]
    .Input("offsets: float")         // [T, B, A] with has_offsets (y_{t-1} W_y of the query), else ignored
    .Output("states: float")         // [T, B, U]
    .Output("cells: float")          // [T, B, U]
    .Output("contexts: float")       // [T, B, M]
    .Output("weights: float")        // [T, B, S]
    .Output("saved: float")          // [T, B, 4U] GRU (z, r, candidate, R_h s + b'_h); [T, B, 5U] LSTM (i, f, g, o, tanh c)
    .Output("queries: float")        // [T, B, A]: W s_{t-1} (+ offsets), for the backward pass
    .SetShapeFn(ForwardShape);

REGISTER_OP("TranslateBahdanauBackward")
    .Attr("gru: bool")
    .Attr("bf16_matmuls: bool = false")
    .Input("d_states: float")        // [T, B, U]
    .Input("d_contexts: float")      // [T, B, M]
    .Input("d_weights: float")       // [T, B, S]
    .Input("init_h: float")          // [B, U]
    .Input("init_cell: float")       // [B, U]
    .Input("saved: float")           // [T, B, 4U] GRU, [T, B, 5U] LSTM: the forward's saved
    .Input("queries: float")         // [T, B, A]: W s_{t-1} (+ offsets)
    .Input("weights: float")         // [T, B, S]
    .Input("values: float")          // [B, S, M]
    .Input("keys: float")            // [B, S, A]
    .Input("v: float")               // [A]
    .Input("fused: float")           // [U, G + A]
    .Input("context_kernel: float")  // [M, G]
    .Input("mask: bool")             // [B, S]
    .Input("states: float")          // [T, B, U]: the forward's s_1 .. s_T
    .Input("cells: float")           // [T, B, U]: the forward's memory cells (an LSTM's)
    .Input("h0: float")              // [B, U]
    .Input("cell0: float")           // [B, U]
    .Output("d_h0: float")           // [B, U]
    .Output("d_cell0: float")        // [B, U]
    .Output("d_keys: float")         // [B, S, A]
    .Output("d_v: float")            // [A]
    .Output("d_xs: float")           // [T, B, G]
    .Output("d_fused: float")        // [T, B, G + A]
    .Output("d_contexts_all: float")  // [T, B, M]
    .SetShapeFn(BackwardShape);

REGISTER_KERNEL_BUILDER(Name("TranslateBahdanauForward").Device(DEVICE_CPU), ForwardOp);
REGISTER_KERNEL_BUILDER(Name("TranslateBahdanauBackward").Device(DEVICE_CPU), BackwardOp);
