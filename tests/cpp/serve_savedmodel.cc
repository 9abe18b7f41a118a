// serve_savedmodel: load an exported SavedModel the way TensorFlow Serving
// does (C++ SavedModel loader, "serve" tag, SignatureDef lookup, Session::Run)
// and run one signature on sentences read from stdin. No Python involved.
//
// Usage: serve_savedmodel EXPORT_DIR SIGNATURE [OP_LIBRARY.so ...]
//
//   * Every OP_LIBRARY is loaded with TF_LoadLibrary before the SavedModel, so
//     custom ops/kernels (e.g. tensorflow_text SentencePiece) are registered.
//   * stdin: one sentence per '\n'-terminated line, raw bytes (no decoding, no
//     '\r' stripping). A final line without '\n' is still a sentence. Empty
//     stdin is a batch of 0.
//   * The sentences are fed as a tf.string [batch] tensor to the signature
//     input named "sentences"; every signature output is fetched by its
//     tensor name.
//   * stdout: for each sentence one line with the outputs in sorted output-key
//     order separated by TAB; tf.string outputs as raw bytes, tf.float32 (and
//     tf.float64) outputs with "%.6f". An output of shape [batch, d1, ...]
//     gives each sentence its d1 x ... values in row-major order, separated
//     by the ASCII unit separator 0x1F. Nothing else is written to stdout;
//     all diagnostics go to stderr.
//
// Exit status: 0 on success, 1 on usage / load / run / shape / dtype errors.

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensorflow/c/c_api.h"
#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.pb.h"
#include "tensorflow/core/protobuf/config.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/public/session.h"
#include "tensorflow/core/public/session_options.h"

namespace {

constexpr char kInputKey[] = "sentences";

int Fail(const std::string& message) {
  std::cerr << "serve_savedmodel: error: " << message << std::endl;
  return 1;
}

// Splits raw stdin bytes into '\n'-terminated lines (no other processing).
std::vector<std::string> ReadSentences(std::istream& in) {
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(data.substr(start));
      break;
    }
    lines.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0]
              << " EXPORT_DIR SIGNATURE [OP_LIBRARY.so ...]" << std::endl;
    return 2;
  }
  const std::string export_dir = argv[1];
  const std::string signature_key = argv[2];

  // 1. Custom op libraries (handles are intentionally kept alive).
  for (int i = 3; i < argc; ++i) {
    TF_Status* status = TF_NewStatus();
    TF_Library* lib = TF_LoadLibrary(argv[i], status);
    if (TF_GetCode(status) != TF_OK || lib == nullptr) {
      std::string msg = std::string("could not load op library ") + argv[i] +
                        ": " + TF_Message(status);
      TF_DeleteStatus(status);
      return Fail(msg);
    }
    TF_DeleteStatus(status);
    std::cerr << "serve_savedmodel: loaded op library " << argv[i]
              << std::endl;
  }

  // 2. SavedModel, exactly like TF Serving's SavedModelBundle path.
  tensorflow::SessionOptions session_options;
  tensorflow::RunOptions run_options;
  tensorflow::SavedModelBundle bundle;
  // tensorflow/cc/saved_model/tag_constants.h is not shipped in the pip
  // wheel's include dir, so spell kSavedModelTagServe out.
  const std::unordered_set<std::string> tags = {"serve"};
  absl::Status load_status = tensorflow::LoadSavedModel(
      session_options, run_options, export_dir, tags, &bundle);
  if (!load_status.ok()) {
    return Fail("LoadSavedModel(" + export_dir +
                ") failed: " + std::string(load_status.ToString()));
  }

  // 3. Signature lookup.
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto sig_it = signatures.find(signature_key);
  if (sig_it == signatures.end()) {
    std::string available;
    for (const auto& kv : signatures) {
      available += (available.empty() ? "" : ", ") + kv.first;
    }
    return Fail("signature '" + signature_key +
                "' not found; available: [" + available + "]");
  }
  const tensorflow::SignatureDef& signature = sig_it->second;
  auto in_it = signature.inputs().find(kInputKey);
  if (in_it == signature.inputs().end()) {
    return Fail("signature '" + signature_key + "' has no input named '" +
                kInputKey + "'");
  }
  if (in_it->second.dtype() != tensorflow::DT_STRING) {
    return Fail(std::string("input '") + kInputKey + "' has dtype " +
                tensorflow::DataType_Name(in_it->second.dtype()) +
                ", expected DT_STRING");
  }
  const std::string input_tensor_name = in_it->second.name();

  std::vector<std::string> output_keys;
  for (const auto& kv : signature.outputs()) output_keys.push_back(kv.first);
  std::sort(output_keys.begin(), output_keys.end());
  std::vector<std::string> output_tensor_names;
  for (const auto& key : output_keys) {
    const tensorflow::TensorInfo& info = signature.outputs().at(key);
    if (info.name().empty()) {
      return Fail("output '" + key +
                  "' is not a dense tensor (composite/sparse outputs are "
                  "not supported)");
    }
    output_tensor_names.push_back(info.name());
  }
  if (output_keys.empty()) {
    return Fail("signature '" + signature_key + "' has no outputs");
  }

  // 4. Input batch.
  const std::vector<std::string> sentences = ReadSentences(std::cin);
  const int64_t batch = static_cast<int64_t>(sentences.size());
  tensorflow::Tensor input(tensorflow::DT_STRING,
                           tensorflow::TensorShape({batch}));
  auto flat_in = input.flat<tensorflow::tstring>();
  for (int64_t i = 0; i < batch; ++i) flat_in(i) = sentences[i];
  std::cerr << "serve_savedmodel: running signature '" << signature_key
            << "' on batch of " << batch << std::endl;

  // 5. Run.
  std::vector<tensorflow::Tensor> outputs;
  absl::Status run_status = bundle.GetSession()->Run(
      {{input_tensor_name, input}}, output_tensor_names, {}, &outputs);
  if (!run_status.ok()) {
    return Fail("Session::Run failed: " + std::string(run_status.ToString()));
  }
  if (outputs.size() != output_keys.size()) {
    return Fail("expected " + std::to_string(output_keys.size()) +
                " outputs, got " + std::to_string(outputs.size()));
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    const tensorflow::Tensor& t = outputs[k];
    if (t.dims() < 1 || t.dim_size(0) != batch) {
      return Fail("output '" + output_keys[k] + "' has shape " +
                  t.shape().DebugString() + ", expected [" +
                  std::to_string(batch) + ", ...]");
    }
    const tensorflow::DataType dt = t.dtype();
    if (dt != tensorflow::DT_STRING && dt != tensorflow::DT_FLOAT &&
        dt != tensorflow::DT_DOUBLE) {
      return Fail("output '" + output_keys[k] + "' has unsupported dtype " +
                  tensorflow::DataType_Name(dt) +
                  " (supported: DT_STRING, DT_FLOAT, DT_DOUBLE)");
    }
  }

  // 6. Rows.
  for (int64_t i = 0; i < batch; ++i) {
    for (size_t k = 0; k < outputs.size(); ++k) {
      if (k > 0) std::fputc('\t', stdout);
      const tensorflow::Tensor& t = outputs[k];
      const int64_t row = t.NumElements() / batch;
      for (int64_t j = 0; j < row; ++j) {
        if (j > 0) std::fputc(0x1f, stdout);
        const int64_t at = i * row + j;
        switch (t.dtype()) {
          case tensorflow::DT_STRING: {
            const tensorflow::tstring& s = t.flat<tensorflow::tstring>()(at);
            std::fwrite(s.data(), 1, s.size(), stdout);
            break;
          }
          case tensorflow::DT_FLOAT:
            std::fprintf(stdout, "%.6f",
                         static_cast<double>(t.flat<float>()(at)));
            break;
          case tensorflow::DT_DOUBLE:
            std::fprintf(stdout, "%.6f", t.flat<double>()(at));
            break;
          default:
            return Fail("unreachable dtype");
        }
      }
    }
    std::fputc('\n', stdout);
  }
  if (std::fflush(stdout) != 0) return Fail("could not flush stdout");
  return 0;
}
