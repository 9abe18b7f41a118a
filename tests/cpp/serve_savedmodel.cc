// serve_savedmodel: load an exported SavedModel the way TensorFlow Serving
// does (C++ SavedModel loader, "serve" tag, SignatureDef lookup, Session::Run)
// and run one signature on sentences read from stdin. No Python involved.
//
// Usage: serve_savedmodel EXPORT_DIR SIGNATURE [OP_LIBRARY.so ...]
//        serve_savedmodel EXPORT_DIR --warmup [OP_LIBRARY.so ...]
//
// With --warmup, instead of reading stdin it replays
// EXPORT_DIR/assets.extra/tf_serving_warmup_requests as TF Serving does at
// load time: the file is TFRecord-framed (length, masked CRC32C of the
// length, data, masked CRC32C of the data; both CRCs are checked), each
// record a tensorflow.serving.PredictionLog whose predict_log.request is a
// PredictRequest. The tensorflow_serving protos are not part of the
// TensorFlow wheel, so the three outer messages (PredictionLog, PredictLog,
// PredictRequest and its ModelSpec) are decoded with a minimal protobuf wire
// reader below; the input tensors themselves are real tensorflow::TensorProto
// messages, parsed by TensorFlow and turned into Tensors with FromProto. Each
// record is run through Session::Run on its signature with every output
// fetched; stdout gets, per record, a line "#record<TAB>INDEX<TAB>SIGNATURE
// <TAB>BATCH" and then its rows in the format below.
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
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <iostream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensorflow/c/c_api.h"
#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor.pb.h"
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

// ---- TFRecord framing and a minimal protobuf wire reader (for --warmup) ----

uint32_t Crc32c(const std::string& data) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : data) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

// TFRecord's masked CRC (tensorflow/core/lib/hash/crc32c.h: Mask).
uint32_t MaskedCrc(const std::string& data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t LittleEndian(const std::string& bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

// Reads every record of a TFRecord file; false with `error` set on bad framing.
bool ReadTfRecords(const std::string& path, std::vector<std::string>* records, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  while (true) {
    std::string header(12, '\0');
    in.read(&header[0], 12);
    if (in.gcount() == 0) return true;
    if (in.gcount() != 12) {
      *error = "truncated record header in " + path;
      return false;
    }
    const std::string length_bytes = header.substr(0, 8);
    if (static_cast<uint32_t>(LittleEndian(header.substr(8, 4))) != MaskedCrc(length_bytes)) {
      *error = "length CRC mismatch in " + path;
      return false;
    }
    const uint64_t length = LittleEndian(length_bytes);
    std::string data(length, '\0');
    std::string footer(4, '\0');
    in.read(&data[0], static_cast<std::streamsize>(length));
    in.read(&footer[0], 4);
    if (!in) {
      *error = "truncated record in " + path;
      return false;
    }
    if (static_cast<uint32_t>(LittleEndian(footer)) != MaskedCrc(data)) {
      *error = "data CRC mismatch in " + path;
      return false;
    }
    records->push_back(std::move(data));
  }
}

// One field of a protobuf message: its number, wire type and (for
// length-delimited fields) its bytes.
struct WireField {
  uint32_t number;
  uint32_t wire_type;
  std::string bytes;
};

bool ReadVarint(const std::string& data, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < data.size(); shift += 7) {
    const unsigned char b = data[(*pos)++];
    *value |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Splits a serialized message into its fields (varint, 64-bit, length-delimited, 32-bit).
bool ParseFields(const std::string& data, std::vector<WireField>* fields) {
  size_t pos = 0;
  while (pos < data.size()) {
    uint64_t key = 0;
    if (!ReadVarint(data, &pos, &key)) return false;
    WireField field{static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7), ""};
    uint64_t n = 0;
    switch (field.wire_type) {
      case 0:
        if (!ReadVarint(data, &pos, &n)) return false;
        break;
      case 1:
        if (pos + 8 > data.size()) return false;
        pos += 8;
        break;
      case 2:
        if (!ReadVarint(data, &pos, &n) || pos + n > data.size()) return false;
        field.bytes = data.substr(pos, n);
        pos += n;
        break;
      case 5:
        if (pos + 4 > data.size()) return false;
        pos += 4;
        break;
      default:
        return false;
    }
    fields->push_back(std::move(field));
  }
  return true;
}

// The one length-delimited field `number` of `data` (the last one wins, as in protobuf).
bool SubMessage(const std::string& data, uint32_t number, std::string* out) {
  std::vector<WireField> fields;
  if (!ParseFields(data, &fields)) return false;
  bool found = false;
  for (const auto& f : fields) {
    if (f.number == number && f.wire_type == 2) {
      *out = f.bytes;
      found = true;
    }
  }
  return found;
}

struct WarmupRequest {
  std::string signature;                          // ModelSpec.signature_name (3)
  std::map<std::string, std::string> inputs;      // PredictRequest.inputs (2): alias -> TensorProto bytes
};

// PredictionLog.predict_log (6) -> PredictLog.request (1) -> PredictRequest.
bool ParseWarmupRecord(const std::string& record, WarmupRequest* request, std::string* error) {
  std::string predict_log, predict_request;
  if (!SubMessage(record, 6, &predict_log)) {
    *error = "record is not a PredictionLog with a predict_log (only predict warm-up is supported)";
    return false;
  }
  if (!SubMessage(predict_log, 1, &predict_request)) {
    *error = "predict_log has no request";
    return false;
  }
  std::vector<WireField> fields;
  if (!ParseFields(predict_request, &fields)) {
    *error = "malformed PredictRequest";
    return false;
  }
  for (const auto& f : fields) {
    if (f.wire_type != 2) continue;
    if (f.number == 1) {  // ModelSpec
      std::string name;
      if (SubMessage(f.bytes, 3, &name)) request->signature = name;
    } else if (f.number == 2) {  // map<string, TensorProto> entry: key 1, value 2
      std::string key, value;
      if (!SubMessage(f.bytes, 1, &key) || !SubMessage(f.bytes, 2, &value)) {
        *error = "malformed inputs map entry";
        return false;
      }
      request->inputs[key] = value;
    }
  }
  if (request->signature.empty()) request->signature = "serving_default";
  return true;
}

// Writes one line per batch row (see the header comment); "" or an error.
std::string PrintRows(const std::vector<tensorflow::Tensor>& outputs,
                      const std::vector<std::string>& output_keys,
                      int64_t batch) {
  for (size_t k = 0; k < outputs.size(); ++k) {
    const tensorflow::Tensor& t = outputs[k];
    if (t.dims() < 1 || t.dim_size(0) != batch) {
      return "output '" + output_keys[k] + "' has shape " +
             t.shape().DebugString() + ", expected [" + std::to_string(batch) +
             ", ...]";
    }
    const tensorflow::DataType dt = t.dtype();
    if (dt != tensorflow::DT_STRING && dt != tensorflow::DT_FLOAT &&
        dt != tensorflow::DT_DOUBLE) {
      return "output '" + output_keys[k] + "' has unsupported dtype " +
             tensorflow::DataType_Name(dt) +
             " (supported: DT_STRING, DT_FLOAT, DT_DOUBLE)";
    }
  }
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
            std::fprintf(stdout, "%.6f", static_cast<double>(t.flat<float>()(at)));
            break;
          default:
            std::fprintf(stdout, "%.6f", t.flat<double>()(at));
            break;
        }
      }
    }
    std::fputc('\n', stdout);
  }
  return "";
}

// Replays the export's warm-up records through Session::Run, as TF Serving does at load.
int RunWarmup(const tensorflow::SavedModelBundle& bundle, const std::string& export_dir) {
  const std::string path = export_dir + "/assets.extra/tf_serving_warmup_requests";
  std::vector<std::string> records;
  std::string error;
  if (!ReadTfRecords(path, &records, &error)) return Fail(error);
  if (records.empty()) return Fail("no warm-up records in " + path);
  const auto& signatures = bundle.meta_graph_def.signature_def();
  for (size_t r = 0; r < records.size(); ++r) {
    const std::string where = "warm-up record " + std::to_string(r);
    WarmupRequest request;
    if (!ParseWarmupRecord(records[r], &request, &error)) return Fail(where + ": " + error);
    auto sig_it = signatures.find(request.signature);
    if (sig_it == signatures.end()) {
      return Fail(where + ": signature '" + request.signature + "' not in the SavedModel");
    }
    const tensorflow::SignatureDef& signature = sig_it->second;
    if (request.inputs.size() != static_cast<size_t>(signature.inputs().size())) {
      return Fail(where + ": has " + std::to_string(request.inputs.size()) +
                  " inputs, signature '" + request.signature + "' takes " +
                  std::to_string(signature.inputs().size()));
    }
    std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
    int64_t batch = -1;
    for (const auto& kv : request.inputs) {
      auto in_it = signature.inputs().find(kv.first);
      if (in_it == signature.inputs().end()) {
        return Fail(where + ": input '" + kv.first + "' is not in signature '" + request.signature + "'");
      }
      tensorflow::TensorProto proto;
      tensorflow::Tensor tensor;
      if (!proto.ParseFromString(kv.second) || !tensor.FromProto(proto)) {
        return Fail(where + ": input '" + kv.first + "' is not a valid TensorProto");
      }
      if (tensor.dtype() != in_it->second.dtype()) {
        return Fail(where + ": input '" + kv.first + "' has dtype " +
                    tensorflow::DataType_Name(tensor.dtype()) + ", the signature wants " +
                    tensorflow::DataType_Name(in_it->second.dtype()));
      }
      if (tensor.dims() < 1) return Fail(where + ": input '" + kv.first + "' has no batch dimension");
      batch = tensor.dim_size(0);
      feeds.emplace_back(in_it->second.name(), tensor);
    }
    std::vector<std::string> output_keys, output_names;
    for (const auto& kv : signature.outputs()) output_keys.push_back(kv.first);
    std::sort(output_keys.begin(), output_keys.end());
    for (const auto& key : output_keys) output_names.push_back(signature.outputs().at(key).name());
    std::vector<tensorflow::Tensor> outputs;
    absl::Status status = bundle.GetSession()->Run(feeds, output_names, {}, &outputs);
    if (!status.ok()) return Fail(where + ": Session::Run failed: " + std::string(status.ToString()));
    std::fprintf(stdout, "#record\t%zu\t%s\t%lld\n", r, request.signature.c_str(),
                 static_cast<long long>(batch));
    error = PrintRows(outputs, output_keys, batch);
    if (!error.empty()) return Fail(where + ": " + error);
  }
  std::cerr << "serve_savedmodel: replayed " << records.size() << " warm-up records" << std::endl;
  if (std::fflush(stdout) != 0) return Fail("could not flush stdout");
  return 0;
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

  if (signature_key == "--warmup") return RunWarmup(bundle, export_dir);

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
  // 6. Rows.
  const std::string print_error = PrintRows(outputs, output_keys, batch);
  if (!print_error.empty()) return Fail(print_error);
  if (std::fflush(stdout) != 0) return Fail("could not flush stdout");
  return 0;
}
