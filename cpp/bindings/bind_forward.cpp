// The fused forward (forward_llama.h) for Python: LlamaModel(hparams, tensors,
// n_threads) over the caller's tensor buffers (kept alive by the model
// object), LlamaSession(model, n_ctx, n_batch) with prefill/decode returning
// a fresh float32 logits array. The GIL is released while the forward runs.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "ggufsm/errors.h"
#include "ggufsm/forward_llama.h"

namespace py = pybind11;

namespace ggufsm::bind {

namespace {

// Every key must be one the forward knows, so that a misspelt switch is an error rather than a default.
LlamaHparams hparams_from_dict(const py::dict& d) {
    LlamaHparams hp;
    const std::map<std::string, std::function<void(py::handle)>> setters = {
        {"n_vocab", [&](py::handle v) { hp.n_vocab = v.cast<int64_t>(); }},
        {"n_embd", [&](py::handle v) { hp.n_embd = v.cast<int64_t>(); }},
        {"n_layer", [&](py::handle v) { hp.n_layer = v.cast<int64_t>(); }},
        {"n_head", [&](py::handle v) { hp.n_head = v.cast<int64_t>(); }},
        {"n_head_kv", [&](py::handle v) { hp.n_head_kv = v.cast<int64_t>(); }},
        {"head_dim", [&](py::handle v) { hp.head_dim = v.cast<int64_t>(); }},
        {"n_ff", [&](py::handle v) { hp.n_ff = v.cast<int64_t>(); }},
        {"n_rot", [&](py::handle v) { hp.n_rot = v.cast<int64_t>(); }},
        {"rms_eps", [&](py::handle v) { hp.rms_eps = v.cast<float>(); }},
        {"rope_freq_base", [&](py::handle v) { hp.rope_freq_base = v.cast<float>(); }},
        {"rope_freq_base_local", [&](py::handle v) { hp.rope_freq_base_local = v.cast<float>(); }},
        {"rope_neox", [&](py::handle v) { hp.rope_neox = v.cast<bool>(); }},
        {"attn_scale", [&](py::handle v) { hp.attn_scale = v.cast<float>(); }},
        {"embd_scale", [&](py::handle v) { hp.embd_scale = v.cast<float>(); }},
        {"sliding_window", [&](py::handle v) { hp.sliding_window = v.cast<int64_t>(); }},
        {"swa_period", [&](py::handle v) { hp.swa_period = v.cast<int64_t>(); }},
        {"ffn", [&](py::handle v) {
             const auto name = v.cast<std::string>();
             if (name != "swiglu" && name != "geglu") throw Error(code::InvalidInput, "hparams ffn is '" + name + "'; one of swiglu, geglu");
             hp.ffn = name == "swiglu" ? FeedForward::SwiGLU : FeedForward::GeGLU;
         }},
        {"final_logit_softcap", [&](py::handle v) { hp.final_logit_softcap = v.cast<float>(); }},
        {"qk_norm", [&](py::handle v) { hp.qk_norm = v.cast<bool>(); }},
        {"post_norms", [&](py::handle v) { hp.post_norms = v.cast<bool>(); }},
    };
    for (const auto& [key, value] : d) {
        const auto name = key.cast<std::string>();
        auto setter = setters.find(name);
        if (setter == setters.end()) throw Error(code::InvalidInput, "unknown hyperparameter '" + name + "'");
        setter->second(value);
    }
    return hp;
}

// tensors: name -> (ggml_type, shape in numpy order, buffer of the bytes).
std::map<std::string, TensorRef> tensors_from_dict(const py::dict& d) {
    std::map<std::string, TensorRef> tensors;
    for (const auto& [key, value] : d) {
        const auto entry = value.cast<py::tuple>();
        TensorRef ref;
        ref.ggml_type = entry[0].cast<uint32_t>();
        ref.shape = entry[1].cast<std::vector<int64_t>>();
        const py::buffer_info bytes = entry[2].cast<py::buffer>().request();
        ref.data = bytes.ptr;
        ref.n_bytes = size_t(bytes.size * bytes.itemsize);
        tensors.emplace(key.cast<std::string>(), ref);
    }
    return tensors;
}

py::array_t<float> run(LlamaSession& session, int64_t n_vocab, const int64_t* tokens, int64_t n, int64_t start_pos) {
    py::array_t<float> logits(n_vocab);
    float* out = logits.mutable_data();
    {
        py::gil_scoped_release release;
        session.prefill(tokens, n, start_pos, out);
    }
    return logits;
}

}  // namespace

void forward(py::module_& m) {
    py::class_<LlamaModel, std::shared_ptr<LlamaModel>>(m, "LlamaModel",
                                                         "The llama-family fused forward's weights (views into `tensors`) and thread pool.")
        .def(py::init([](const py::dict& hparams, const py::dict& tensors, int n_threads) {
                 LlamaHparams hp = hparams_from_dict(hparams);
                 return std::make_shared<LlamaModel>(hp, llama_weights(hp, tensors_from_dict(tensors)), n_threads);
             }),
             py::arg("hparams"), py::arg("tensors"), py::arg("n_threads"), py::keep_alive<1, 3>())
        .def_property_readonly("n_threads", [](const LlamaModel& model) { return model.pool().size(); })
        .def_property_readonly("n_vocab", [](const LlamaModel& model) { return model.hparams().n_vocab; });

    py::class_<LlamaSession>(m, "LlamaSession", "One sequence over a LlamaModel: KV cache (f32), scratch, logits.")
        .def(py::init([](std::shared_ptr<LlamaModel> model, int64_t n_ctx, int64_t n_batch) {
                 return std::make_unique<LlamaSession>(std::move(model), n_ctx, n_batch);
             }),
             py::arg("model"), py::arg("n_ctx"), py::arg("n_batch") = 512, py::keep_alive<1, 2>())
        .def(
            "prefill",
            [](LlamaSession& s, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& tokens, int64_t start_pos) {
                return run(s, int64_t(s.logits_bytes() / sizeof(float)), tokens.data(), int64_t(tokens.size()), start_pos);
            },
            py::arg("tokens"), py::arg("start_pos"), "Logits [n_vocab] of the last of tokens [n] at start_pos..")
        .def(
            "decode",
            [](LlamaSession& s, int64_t token, int64_t pos) {
                return run(s, int64_t(s.logits_bytes() / sizeof(float)), &token, 1, pos);
            },
            py::arg("token"), py::arg("pos"), "Logits [n_vocab] after one token at pos")
        .def_property_readonly("n_ctx", &LlamaSession::n_ctx)
        .def_property_readonly("n_batch", &LlamaSession::n_batch)
        .def_property_readonly("nbytes", [](const LlamaSession& s) {
            py::dict d;
            d["kv_cache"] = s.kv_bytes();
            d["scratch"] = s.scratch_bytes();
            d["logits"] = s.logits_bytes();
            return d;
        });
}

}  // namespace ggufsm::bind
