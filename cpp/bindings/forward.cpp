// The fused forward (forward/forward.h) for Python: LlamaModel(file,
// n_threads) over a validated file (GgufModel, kept alive by the model), and
// LlamaSession(model, n_ctx, n_batch) whose prefill/decode return the
// session's own logits as a read-only array, valid until its next call. The
// GIL is released while the forward runs.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "forward/forward.h"
#include "kernels/ops.h"

namespace py = pybind11;

namespace ggufsm::bind {

namespace {

[[noreturn]] void not_integers(const std::string& what) {
    throw Error(code::InvalidInput, "token ids must be integers, got " + what);
}

// Token ids from Python: a sequence of ints (not bools) or an integer numpy
// array. What is an integer is decided here; what is a valid id, by
// check_token_ids. An int past int64 is outside every vocabulary.
std::vector<int64_t> token_ids(py::handle tokens, int64_t n_vocab) {
    auto outside = [&](const std::string& id, size_t index) {
        throw Error(code::InvalidInput, "token id " + id + " at index " + std::to_string(index) +
                                            " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    };
    std::vector<int64_t> ids;
    if (py::isinstance<py::array>(tokens)) {
        const auto array = py::reinterpret_borrow<py::array>(tokens);
        const char kind = array.dtype().kind();
        if (array.size() > 0 && kind != 'i' && kind != 'u') not_integers(py::str(array.dtype()).cast<std::string>() + " values");
        if (kind == 'u' && array.itemsize() == 8) {
            const auto wide = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(array);
            for (py::ssize_t i = 0; i < wide.size(); ++i)
                if (wide.data()[i] > uint64_t(std::numeric_limits<int64_t>::max())) outside(std::to_string(wide.data()[i]), size_t(i));
        }
        const auto ints = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(array);
        ids.assign(ints.data(), ints.data() + ints.size());
        return ids;
    }
    if (!py::isinstance<py::sequence>(tokens) || py::isinstance<py::str>(tokens) || py::isinstance<py::bytes>(tokens)) {
        not_integers("a " + std::string(Py_TYPE(tokens.ptr())->tp_name));
    }
    const auto sequence = py::reinterpret_borrow<py::sequence>(tokens);
    ids.reserve(sequence.size());
    for (size_t i = 0; i < sequence.size(); ++i) {
        const py::object item = sequence[i];
        if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr())) {
            not_integers(std::string(Py_TYPE(item.ptr())->tp_name) + " " + py::repr(item).cast<std::string>() + " at index " +
                         std::to_string(i));
        }
        const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
        if (!index) throw py::error_already_set();
        int overflow = 0;
        const long long id = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
        if (overflow) outside(py::str(index).cast<std::string>(), i);
        ids.push_back(id);
    }
    return ids;
}

// The name of the capsule a logits view keeps its buffer alive by: greedy_token knows a session's
// buffer by it (and reads the greedy token the forward left there).
constexpr const char* kLogitsCapsule = "ggufsm.SessionLogits";

// A read-only float32 view [n_vocab] of the session's logits buffer; the
// capsule shares its ownership, so the view stays valid after the session is
// gone (it shows the values of the session's last call).
py::array logits_view(const LlamaSession& session, int64_t n_vocab) {
    auto* owner = new std::shared_ptr<SessionLogits>(session.logits());
    PyObject* capsule = PyCapsule_New(owner, kLogitsCapsule, [](PyObject* self) {
        delete static_cast<std::shared_ptr<SessionLogits>*>(PyCapsule_GetPointer(self, kLogitsCapsule));
    });
    if (!capsule) {
        delete owner;
        throw py::error_already_set();
    }
    const py::object base = py::reinterpret_steal<py::object>(capsule);
    py::array view(py::dtype::of<float>(), {static_cast<py::ssize_t>(n_vocab)}, {static_cast<py::ssize_t>(sizeof(float))},
                   (*owner)->values.get(), base);
    py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return view;
}

// The greedy token the forward settled for `logits` when they are exactly a session's whole buffer (a view
// of it: its capsule, its first value, its length), else SessionLogits::kUnknown. Any other array (a copy, a
// penalised one, a slice) is read as given.
int64_t settled_greedy_token(const py::array& logits, const float* data, int64_t n) {
    PyObject* base = py::detail::array_proxy(logits.ptr())->base;
    if (!base || !PyCapsule_IsValid(base, kLogitsCapsule)) return SessionLogits::kUnknown;
    const auto* owner = static_cast<const std::shared_ptr<SessionLogits>*>(PyCapsule_GetPointer(base, kLogitsCapsule));
    const SessionLogits& buffer = **owner;
    if (buffer.values.get() != data || buffer.n != n) return SessionLogits::kUnknown;
    return buffer.greedy.load(std::memory_order_relaxed);
}

py::array run(LlamaSession& session, const std::vector<int64_t>& tokens, int64_t start_pos) {
    {
        py::gil_scoped_release release;
        session.prefill(tokens.data(), int64_t(tokens.size()), start_pos);
    }
    return logits_view(session, int64_t(session.logits_bytes() / sizeof(float)));
}

int64_t vocabulary(const LlamaSession& session) { return int64_t(session.logits_bytes() / sizeof(float)); }

// None, or {passes, rows, seconds, ops: [{op, type, seconds, calls}], waits: [{op, member0_seconds, others_seconds}],
// walked_seconds, ran_seconds: (member 0, the others)} (LlamaSession's and DecodeBatch's profile).
py::object profile_dict(const ForwardProfile* p) {
    if (!p) return py::none();
    py::list ops;
    for (int op = 0; op < ForwardProfile::kOps; ++op) {
        for (int type = 0; type < ForwardProfile::kTypes; ++type) {
            if (p->calls[size_t(op)][size_t(type)] == 0) continue;
            const bool matmul = op >= int(ForwardOp::MatmulQkv) && op <= int(ForwardOp::MatmulOutput);
            py::dict row;
            row["op"] = forward_op_name(ForwardOp(op));
            row["type"] = matmul ? py::object(py::str(type_name(uint32_t(type)))) : py::object(py::none());
            row["seconds"] = double(p->ns[size_t(op)][size_t(type)]) * 1e-9;
            row["calls"] = p->calls[size_t(op)][size_t(type)];
            ops.append(row);
        }
    }
    py::list waits;
    for (int op = 0; op < ForwardProfile::kOps; ++op) {
        const int64_t first = p->wait_ns[0][size_t(op)], others = p->wait_ns[1][size_t(op)];
        if (first == 0 && others == 0) continue;
        py::dict row;
        row["op"] = forward_op_name(ForwardOp(op));
        row["member0_seconds"] = double(first) * 1e-9;
        row["others_seconds"] = double(others) * 1e-9;
        waits.append(row);
    }
    py::dict d;
    d["waits"] = waits;
    d["walked_seconds"] = py::make_tuple(double(p->walked_ns[0]) * 1e-9, double(p->walked_ns[1]) * 1e-9);
    d["ran_seconds"] = py::make_tuple(double(p->ran_ns[0]) * 1e-9, double(p->ran_ns[1]) * 1e-9);
    d["passes"] = p->passes;
    d["rows"] = p->rows;
    d["seconds"] = double(p->pass_ns) * 1e-9;
    d["ops"] = ops;
    return d;
}

}  // namespace

void forward(py::module_& m) {
    py::class_<LlamaModel, std::shared_ptr<LlamaModel>>(
        m, "LlamaModel", "The llama-family fused forward over a validated file: its weights in place and a thread pool.")
        .def(py::init([](std::shared_ptr<gguf::Model> file, int n_threads, bool huge_pages, bool repack) {
                 py::gil_scoped_release release;
                 return std::make_shared<LlamaModel>(std::move(file), n_threads,
                                                     huge_pages ? WeightPlacement::HugePages : WeightPlacement::InPlace, repack);
             }),
             py::arg("file"), py::arg("n_threads"), py::arg("huge_pages") = false, py::arg("repack") = true,
             "huge_pages: read the weights from one anonymous copy advised MADV_HUGEPAGE (made at load) instead of the file map; "
             "repack: repack the layer matrices the register-blocked kernels read (kernels/repack.h) at load")
        .def_property_readonly("weights_repacked", &LlamaModel::repacked_bytes, "bytes of the layer matrices repacked at load")
        .def_property_readonly("repack_seconds", &LlamaModel::repack_seconds, "seconds the repack took, part of the load")
        .def_property_readonly("repacked_address", &LlamaModel::repacked_address,
                               "address of the repacked matrices' own mapping (0 when they have none)")
        .def_property_readonly(
            "scales_checked",
            [](const LlamaModel& model) {
                py::dict checked;
                for (const LlamaModel::ScaleCheck& c : model.scales_checked())
                    checked[py::int_(c.tensor_offset)] = c.first_non_finite < 0 ? py::object(py::none()) : py::object(py::int_(c.first_non_finite));
                return checked;
            },
            "tensor's byte offset in the file -> the byte offset within it of its first NaN or infinite block scale, or "
            "None: the matrices whose scales the load's read already checked (the repack's, the Q8_0 scan's)")
        .def_property_readonly(
            "output_repack",
            [](const LlamaModel& model) -> py::object {
                const OutputRepack* r = model.output_repack();
                if (!r) return py::none();
                static const char* const names[] = {"waiting", "repacking", "ready", "swapped", "cancelled", "failed"};
                return py::str(names[int(r->state())]);
            },
            "the output matrix's repack after the first pass (forward/output_repack.h): None (none for this model), "
            "'waiting' (for the first pass to end), 'repacking', 'ready', 'swapped', 'cancelled' or 'failed'")
        .def(
            "wait_output_repack",
            [](const LlamaModel& model, bool start) -> py::object {
                OutputRepack* r = model.output_repack();
                if (!r) return py::none();
                py::gil_scoped_release release;
                if (start) r->start();
                r->wait_done();
                return py::none();
            },
            py::arg("start") = false,
            "block until the output's repack has ended (swapped, with the file pages released, or cancelled/failed); start: "
            "start it now rather than after the first pass. With a pass in flight on another thread, the swap waits for it")
        .def_property_readonly("output_copy", [](const LlamaModel& model) {
            const OutputRepack* r = model.output_repack();
            py::dict d;
            d["bytes"] = r ? r->copy_bytes() : 0;
            d["huge_page_bytes"] = r ? r->huge_page_bytes() : 0;
            return d;
        }, "the output's Rows8 copy: its bytes and of them in 2 MiB pages (0 before the repack)")
        .def_property_readonly("repacked_huge_page_bytes", &LlamaModel::repacked_huge_page_bytes,
                               "bytes of the repacked matrices' own mapping the kernel backs with 2 MiB pages now (AnonHugePages)")
        .def_property_readonly(
            "repacked_collapse",
            [](const LlamaModel& model) -> py::object {
                const HugePageCollapse* c = model.repacked_collapse();
                if (!c) return py::none();
                static const char* const names[] = {"waiting", "collapsing", "done", "cancelled"};
                return py::str(names[int(c->state())]);
            },
            "the repacked matrices' move onto 2 MiB pages after the first pass (runtime/huge_page_collapse.h): None (no "
            "such mapping, or set_layer_page_collapse(False) at load), 'waiting' (for the first pass to end), "
            "'collapsing', 'done' or 'cancelled'")
        .def(
            "wait_repacked_collapse",
            [](const LlamaModel& model, bool start) {
                HugePageCollapse* c = model.repacked_collapse();
                if (!c) return;
                py::gil_scoped_release release;
                if (start) c->start();
                c->wait_done();
            },
            py::arg("start") = false, "block until the collapse has ended; start: start it now rather than after the first pass")
        .def(
            "finish_load",
            [](const LlamaModel& model) {
                // Both started before either is waited for: they run side by side, as after a first pass.
                OutputRepack* repack = model.output_repack();
                HugePageCollapse* collapse = model.repacked_collapse();
                py::gil_scoped_release release;
                if (repack) repack->start();
                if (collapse) collapse->start();
                if (repack) repack->wait_done();
                if (collapse) collapse->wait_done();
            },
            "start now, and block until it has ended, the work the load leaves for after the first pass (the output's "
            "repack, the repacked layers' collapse onto 2 MiB pages): the benches time it as load, not in a timed pass")
        .def_property_readonly("weights_copied", &LlamaModel::copy_bytes, "bytes of the weights' huge-page copy (0: read in place)")
        .def_property_readonly("weights_in_huge_pages", &LlamaModel::huge_page_bytes,
                               "bytes of that copy the kernel backs with 2 MiB pages now (AnonHugePages)")
        .def_property_readonly("n_threads", [](const LlamaModel& model) { return model.pool().size(); })
        .def_property_readonly("n_vocab", [](const LlamaModel& model) { return model.hparams().n_vocab; })
        .def_property_readonly("n_ctx_train", [](const LlamaModel& model) { return model.file().hp.n_ctx_train; })
        .def_property_readonly("weights_mapped", [](const LlamaModel& model) {
            size_t bytes = 0;
            for (const gguf::TensorInfo& info : model.file().file->tensors) bytes += info.n_bytes;
            return bytes;
        }, "bytes of tensor data the weights read in place from the file")
        .def(
            "check_token_ids",
            [](const LlamaModel& model, py::handle tokens) {
                const std::vector<int64_t> ids = token_ids(tokens, model.hparams().n_vocab);
                check_token_ids(ids.data(), int64_t(ids.size()), model.hparams().n_vocab);
            },
            py::arg("tokens"),
            "InvalidInput unless every token is an integer in [0, n_vocab): the one rule the forward and the runtime's guard apply");

    m.def("set_output_repack", &set_output_repack, py::arg("on"),
          "whether models loaded from now on repack their Q8_0 output matrix after the first pass (default on; "
          "forward/output_repack.h): off, it stays in the file's layout, read in the same float order");
    m.def("output_repack_enabled", &output_repack_enabled);
    m.def("set_layer_page_collapse", &set_layer_page_collapse, py::arg("on"),
          "whether models loaded from now on write their repacked layer matrices on 4 KiB pages and move them onto 2 MiB "
          "pages after the first pass (default on; runtime/huge_page_collapse.h), or fault them in as 2 MiB pages at load");
    m.def("layer_page_collapse_enabled", &layer_page_collapse_enabled);

    py::class_<LlamaSession>(m, "LlamaSession", "One sequence over a LlamaModel: KV cache (f16), scratch, logits.")
        .def(py::init([](std::shared_ptr<LlamaModel> model, int64_t n_ctx, int64_t n_batch) {
                 return std::make_unique<LlamaSession>(std::move(model), n_ctx, n_batch);
             }),
             py::arg("model"), py::arg("n_ctx"), py::arg("n_batch") = 512)
        .def(
            "prefill",
            [](LlamaSession& s, py::handle tokens, int64_t start_pos) { return run(s, token_ids(tokens, vocabulary(s)), start_pos); },
            py::arg("tokens"), py::arg("start_pos"),
            "Logits [n_vocab] of the last of tokens [n] at start_pos..: a read-only view of the session's buffer, valid until its next call")
        .def(
            "decode",
            [](LlamaSession& s, py::handle token, int64_t pos) {
                return run(s, token_ids(py::make_tuple(token), vocabulary(s)), pos);
            },
            py::arg("token"), py::arg("pos"), "Logits [n_vocab] after one token at pos (as prefill)")
        .def_property_readonly("n_ctx", &LlamaSession::n_ctx)
        .def_property_readonly("logits", [](const LlamaSession& s) { return logits_view(s, vocabulary(s)); },
                               "the logits of the last evaluated token (read-only view, as prefill returns)")
        .def_property_readonly(
            "greedy_token",
            [](const LlamaSession& s) -> py::object {
                const int64_t token = s.logits()->greedy.load(std::memory_order_relaxed);
                return token == SessionLogits::kUnknown ? py::object(py::none()) : py::object(py::int_(token));
            },
            "the greedy token of the logits (as greedy_token reads them) the last call settled as it wrote them; None while "
            "no call has, or the last one failed partway")
        .def_property_readonly("n_batch", &LlamaSession::n_batch)
        .def("set_profiling", &LlamaSession::set_profiling, py::arg("on"),
             "on: clear the profile and time every later pass into it, op by op; off: stop (the figures stay)")
        .def_property_readonly("profile", [](const LlamaSession& s) { return profile_dict(s.profile()); },
                               "None until set_profiling(True); then {passes, rows, seconds, ops: [{op, type, seconds, calls}]} of the passes since")
        .def_property_readonly("nbytes", [](const LlamaSession& s) {
            py::dict d;
            d["kv_cache"] = s.kv_bytes();
            d["scratch"] = s.scratch_bytes();
            d["logits"] = s.logits_bytes();
            return d;
        });

    py::class_<DecodeBatch>(m, "DecodeBatch",
                            "Several sessions' decode steps as one forward pass over the weights, each in its own KV cache.")
        .def(py::init([](std::shared_ptr<LlamaModel> model) { return std::make_unique<DecodeBatch>(std::move(model)); }),
             py::arg("model"))
        .def(
            "decode",
            [](DecodeBatch& batch, const std::vector<LlamaSession*>& sessions, py::handle tokens, const std::vector<int64_t>& positions) {
                const int64_t n_vocab = sessions.empty() || !sessions[0] ? 0 : vocabulary(*sessions[0]);
                const std::vector<int64_t> ids = token_ids(tokens, n_vocab > 0 ? n_vocab : std::numeric_limits<int64_t>::max());
                if (ids.size() != sessions.size() || positions.size() != sessions.size()) {
                    throw Error(code::InvalidInput, "a batched decode needs one token and one position per session: " +
                                                        std::to_string(sessions.size()) + " sessions, " + std::to_string(ids.size()) +
                                                        " tokens, " + std::to_string(positions.size()) + " positions");
                }
                py::gil_scoped_release release;
                batch.decode(sessions.data(), ids.data(), positions.data(), int64_t(sessions.size()));
            },
            py::arg("sessions"), py::arg("tokens"), py::arg("positions"),
            "tokens[i] at positions[i] in sessions[i], as one pass; each session's logits are then those its own decode() would "
            "leave (read them with session.logits). Every entry is checked before anything runs.")
        .def_property_readonly("scratch_bytes", &DecodeBatch::scratch_bytes)
        .def("set_profiling", &DecodeBatch::set_profiling, py::arg("on"),
             "on: clear the profile and time every later pass into it, op by op; off: stop (the figures stay)")
        .def_property_readonly("profile", [](const DecodeBatch& b) { return profile_dict(b.profile()); },
                               "None until set_profiling(True); then {passes, rows, seconds, ops: [{op, type, seconds, calls}]} of the passes since");
    m.def(
        "greedy_token",
        [](const py::array_t<float, py::array::c_style>& logits) {
            if (logits.ndim() != 1 || logits.shape(0) == 0) {
                throw Error(code::InvalidInput, "greedy_token takes a non-empty [n_vocab] float32 array");
            }
            const float* data = logits.data();
            const int64_t n = logits.shape(0);
            if (const int64_t known = settled_greedy_token(logits, data, n); known != SessionLogits::kUnknown) return known;
            py::gil_scoped_release release;
            return greedy_token(data, n);
        },
        py::arg("logits"),
        "The first index of the largest logit (numpy's argmax), or -1 - the index of the first non-finite one; the GIL "
        "released while it reads. A session's own logits (its decode's or prefill's view, or session.logits): the answer "
        "the forward computed as it wrote them, without reading them again");
    m.def("set_settled_greedy", &set_settled_greedy, py::arg("on") = true,
          "For the benches' A/B within one process: whether prefill, decode and a batched decode settle each session's "
          "greedy token as they write its logits (on by default; off, greedy_token reads the row again); no token changes");
    m.def("shared_pool_count", &shared_pool_count, "worker pools alive in the process (one per thread count in use)");
}

}  // namespace ggufsm::bind
