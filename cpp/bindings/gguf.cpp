// Python face of a validated GGUF file (gguf/model.h): open from a path
// (memory map, the one cache by file identity) or from a caller's buffer
// (borrowed, not copied); metadata as Python values, tensor infos, tensor
// data as read-only numpy views that keep the bytes alive, the validated
// hyperparameters, and the architecture declarations.
//
// Opening a file that is already open returns the same C++ model, and so the
// same Python object while it is alive; it takes attributes (py::dynamic_attr),
// so the Python side hangs what it derives from the file there (its metadata
// dict, its tokenizer) instead of keeping a second cache.
#include <cstring>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "errors.h"
#include "gguf/finite_scan.h"
#include "gguf/model.h"
#include "gguf/read_ahead.h"
#include "gguf/utf8.h"

namespace py = pybind11;
using namespace ggufsm::gguf;

namespace {

// A caller's bytes-like object, borrowed for the lifetime of the parse and of
// every view into it (the buffer export also stops a bytearray from resizing).
class BorrowedBuffer final : public ByteSource {
public:
    explicit BorrowedBuffer(py::handle object) {
        if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_C_CONTIGUOUS) != 0) throw py::error_already_set();
        data_ = static_cast<const uint8_t*>(view_.buf);
        size_ = static_cast<uint64_t>(view_.len);
    }
    ~BorrowedBuffer() override {
        if (!Py_IsInitialized()) return;
        PyGILState_STATE state = PyGILState_Ensure();
        PyBuffer_Release(&view_);
        PyGILState_Release(state);
    }
    std::string describe() const override { return "<" + std::to_string(size_) + " bytes>"; }

private:
    Py_buffer view_{};
};

// A read-ahead over a caller's buffer (a mapped file, mmap.mmap), with its own window and distance: the tests
// drive its bound with a progress of their own (read_through) and observe it (read_ahead.h).
class ReadAheadProbe {
public:
    ReadAheadProbe(py::handle buffer, uint64_t window, uint64_t distance)
        : bytes_(buffer), ahead_(bytes_.data(), bytes_.size(), window, distance) {}
    ReadAhead& ahead() { return ahead_; }

private:
    BorrowedBuffer bytes_;
    ReadAhead ahead_;  // after bytes_: stopped before the buffer is released
};

py::dict read_ahead_state(const ReadAhead* ahead) {
    py::dict d;
    d["windows_read"] = ahead ? ahead->windows_read() : 0;
    d["handled_to"] = ahead ? ahead->handled_to() : 0;
    d["read_to"] = ahead ? ahead->read_to() : 0;
    d["distance"] = ahead ? ahead->distance() : 0;
    d["running"] = ahead ? ahead->running() : false;
    return d;
}

// Python holds models by a non-const holder (pybind11's); the core hands out const ones.
using ModelPtr = std::shared_ptr<Model>;
ModelPtr held(std::shared_ptr<const Model> model) { return std::const_pointer_cast<Model>(std::move(model)); }

// ------------------------------------------------------ values to Python

py::object steal(PyObject* object) {
    if (object == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(object);
}

PyObject* scalar_to_python(const File& file, const Value& value) {
    switch (value.type) {
        case ValueType::UINT64: return PyLong_FromUnsignedLongLong(file.read_u64(value.offset));
        case ValueType::FLOAT32: case ValueType::FLOAT64: return PyFloat_FromDouble(file.float_value(value));
        case ValueType::BOOL: return PyBool_FromLong(file.bool_value(value));
        case ValueType::STRING: {
            const std::string_view text = file.string_value(value);
            return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "strict");
        }
        default: return PyLong_FromLongLong(file.integer_value(value));
    }
}

PyObject* value_to_python(const File& file, const Value& value) {
    if (value.type != ValueType::ARRAY) return scalar_to_python(file, value);
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(value.count));
    if (list == nullptr) return nullptr;
    Py_ssize_t index = 0;
    bool failed = false;
    for_each_element(file, value, [&](const Value& element) {
        if (failed) return;
        PyObject* item = value_to_python(file, element);
        if (item == nullptr) { failed = true; return; }
        PyList_SET_ITEM(list, index++, item);
    });
    if (failed) {
        Py_DECREF(list);
        return nullptr;
    }
    return list;
}

// An array value of fixed-size numbers as a numpy array (its elements copied from the header copy), or
// None for arrays of strings, booleans or arrays: the per-token arrays (token types, scores; 262,144 on
// Gemma 3) without a Python object per element, which the tokenizer turned straight back into an array.
py::object numeric_array(const File& file, const Value& value) {
    if (value.type != ValueType::ARRAY) return py::none();
    py::dtype type;
    switch (value.element_type) {  // GGUF is little-endian, as every CPU the kernels run on
        case ValueType::UINT8: type = py::dtype::of<uint8_t>(); break;
        case ValueType::INT8: type = py::dtype::of<int8_t>(); break;
        case ValueType::UINT16: type = py::dtype::of<uint16_t>(); break;
        case ValueType::INT16: type = py::dtype::of<int16_t>(); break;
        case ValueType::UINT32: type = py::dtype::of<uint32_t>(); break;
        case ValueType::INT32: type = py::dtype::of<int32_t>(); break;
        case ValueType::UINT64: type = py::dtype::of<uint64_t>(); break;
        case ValueType::INT64: type = py::dtype::of<int64_t>(); break;
        case ValueType::FLOAT32: type = py::dtype::of<float>(); break;
        case ValueType::FLOAT64: type = py::dtype::of<double>(); break;
        default: return py::none();
    }
    const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(value.count)};
    py::array out(type, shape);
    const uint64_t bytes = value.count * value_type_size(value.element_type);
    // The elements follow the array's element type (u32) and count (u64).
    if (bytes) std::memcpy(out.mutable_data(), file.header() + value.offset + 12, bytes);
    return std::move(out);
}

py::dict metadata_dict(const Model& model) {
    const File& file = *model.file;
    py::dict metadata;
    for (const MetadataEntry& entry : file.metadata) {
        py::object key = steal(PyUnicode_DecodeUTF8(entry.key.data(), static_cast<Py_ssize_t>(entry.key.size()), "strict"));
        metadata[key] = steal(value_to_python(file, entry.value));
    }
    return metadata;
}

// (name, ggml type id, shape in ggml order, absolute offset, n_bytes) per tensor, in file order.
py::list tensor_infos(const Model& model) {
    py::list infos;
    for (const TensorInfo& info : model.file->tensors) {
        py::tuple shape(info.n_dims);
        for (uint32_t d = 0; d < info.n_dims; ++d) shape[d] = py::int_(info.ne[d]);
        infos.append(py::make_tuple(py::str(info.name.data(), info.name.size()), info.type, shape, info.offset, info.n_bytes));
    }
    return infos;
}

// A read-only uint8 view [n_bytes] of one tensor's data; the capsule keeps the bytes alive.
py::array tensor_view(const Model& model, size_t index) {
    if (index >= model.file->tensors.size())
        throw ggufsm::Error(ggufsm::code::InvalidInput, "tensor index " + std::to_string(index) + " is out of range 0.." +
                                                            std::to_string(model.file->tensors.size()));
    const TensorInfo& info = model.file->tensors[index];
    // A tensor's bytes are asked for to be read (the finite check walks them in file order): the read-ahead may
    // go its distance past where it starts.
    model.file->bytes()->read_through(info.offset);
    auto* owner = new std::shared_ptr<const ByteSource>(model.file->bytes());
    py::capsule base(owner, [](void* pointer) { delete static_cast<std::shared_ptr<const ByteSource>*>(pointer); });
    py::array view(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(info.n_bytes)}, {static_cast<py::ssize_t>(1)},
                   model.file->data() + info.offset, base);
    py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return view;
}

py::dict hyperparameter_dict(const HyperParameters& hp) {
    py::dict d;
    d["architecture"] = hp.architecture;
    d["n_ctx_train"] = hp.n_ctx_train;
    d["n_embd"] = hp.n_embd;
    d["n_layer"] = hp.n_layer;
    d["n_ff"] = hp.n_ff;
    d["n_head"] = hp.n_head;
    d["n_head_kv"] = hp.n_head_kv;
    d["head_dim_k"] = hp.head_dim_k;
    d["head_dim_v"] = hp.head_dim_v;
    d["n_rot"] = hp.n_rot;
    d["sliding_window"] = hp.sliding_window;
    d["n_vocab"] = hp.n_vocab;
    d["rms_eps"] = hp.rms_eps;
    d["rope_freq_base"] = hp.rope_freq_base;
    d["final_logit_softcap"] = hp.final_logit_softcap;
    d["output_tied"] = hp.output_tied;
    d["tokenizer_model"] = hp.tokenizer_model;
    d["rope_style"] = rope_style_name(hp.rope_style);
    d["ffn"] = feed_forward_name(hp.ffn);
    d["qk_norm"] = hp.qk_norm;
    d["post_norms"] = hp.post_norms;
    d["embd_scale"] = hp.embd_scale;
    d["attn_scale"] = hp.attn_scale;
    d["swa_period"] = hp.swa_period;
    d["rope_freq_base_local"] = hp.rope_freq_base_local;
    return d;
}

const char* role_name(TensorRole role) {
    using R = TensorRole;
    switch (role) {
        case R::TokenEmbd: return "token_embd";
        case R::OutputNorm: return "output_norm";
        case R::Output: return "output";
        case R::AttnNorm: return "attn_norm";
        case R::AttnQ: return "attn_q";
        case R::AttnK: return "attn_k";
        case R::AttnV: return "attn_v";
        case R::AttnQNorm: return "attn_q_norm";
        case R::AttnKNorm: return "attn_k_norm";
        case R::AttnOutput: return "attn_output";
        case R::PostAttnNorm: return "post_attn_norm";
        case R::FfnNorm: return "ffn_norm";
        case R::FfnGate: return "ffn_gate";
        case R::FfnUp: return "ffn_up";
        case R::FfnDown: return "ffn_down";
        case R::PostFfnNorm: return "post_ffn_norm";
    }
    return "?";
}

// One architecture's declaration (architecture.h) as plain data.
py::dict declaration(const Architecture& architecture) {
    py::list keys, tensors;
    for (const KeyRule& key : architecture.keys) {
        py::dict k;
        k["key"] = std::string(architecture.name) + "." + key.suffix;
        k["required"] = key.required;
        k["kind"] = key.count ? "count" : "real";
        k["fallback"] = key.count ? py::object(py::none()) : py::object(py::float_(key.fallback));
        k["zero_allowed"] = key.zero_allowed;
        keys.append(k);
    }
    for (const TensorRule& rule : architecture.tensors) {
        py::dict t;
        t["name"] = rule.per_layer ? std::string("blk.{i}.") + rule.name : std::string(rule.name);
        t["role"] = role_name(rule.role);
        t["per_layer"] = rule.per_layer;
        t["optional"] = rule.optional;
        t["shape"] = rule.formula;
        tensors.append(t);
    }
    const ForwardSwitches& f = architecture.forward;
    py::dict forward;
    forward["rope_style"] = rope_style_name(f.rope_style);
    forward["ffn"] = feed_forward_name(f.ffn);
    forward["scale_embedding"] = f.scale_embedding;
    forward["swa_period"] = f.swa_period;
    forward["rope_freq_base_local"] = f.rope_freq_base_local;
    py::dict d;
    d["name"] = architecture.name;
    d["keys"] = keys;
    d["tensors"] = tensors;
    d["forward"] = forward;
    return d;
}

}  // namespace

namespace ggufsm::bind {

void gguf(py::module_& m) {
    py::class_<Model, ModelPtr>(m, "GgufModel", py::dynamic_attr(),
                                "A parsed and validated GGUF file (see ggufsm.reference.model.gguf_file)")
        .def_property_readonly("source", [](const Model& p) { return p.file->bytes()->describe(); })
        .def_property_readonly("version", [](const Model& p) { return p.file->version; })
        .def_property_readonly("alignment", [](const Model& p) { return p.file->alignment; })
        .def_property_readonly("data_offset", [](const Model& p) { return p.file->data_offset; })
        .def_property_readonly("file_size", [](const Model& p) { return p.file->file_size(); })
        .def_property_readonly("architecture", [](const Model& p) { return p.hp.architecture; })
        .def("metadata", &metadata_dict, "metadata key -> Python value (ints, floats, str, bool, lists), in file order")
        .def("metadata_keys", [](const Model& p) {
            py::list keys;
            for (const MetadataEntry& entry : p.file->metadata) keys.append(py::str(entry.key.data(), entry.key.size()));
            return keys;
        }, "the metadata keys, in file order")
        .def("metadata_value", [](const Model& p, const std::string& key) {
            const MetadataEntry* entry = p.file->find(key);
            if (entry == nullptr) throw py::key_error(key);
            return steal(value_to_python(*p.file, entry->value));
        }, py::arg("key"), "one metadata value as a Python value, converted from the validated header copy on each call")
        .def("metadata_array", [](const Model& p, const std::string& key) {
            const MetadataEntry* entry = p.file->find(key);
            if (entry == nullptr) throw py::key_error(key);
            return numeric_array(*p.file, entry->value);
        }, py::arg("key"), "a metadata array of numbers as a numpy array (a copy), or None for any other value")
        .def_property_readonly("header_bytes", [](const Model& p) { return p.file->header_size(); },
                               "bytes of the validated header copy (metadata and tensor infos) the model keeps")
        .def("tensor_infos", &tensor_infos, "[(name, ggml type id, shape (ggml order), absolute offset, n_bytes)]")
        .def("tensor_data", &tensor_view, py::arg("index"), "read-only uint8 view [n_bytes] of tensor `index`")
        .def("changed", [](const Model& p) { return p.file->bytes()->changed(); },
             "why the file's bytes can no longer be trusted (it changed after it was mapped), or '' while they can")
        .def("finish_read_ahead", [](const Model& p, bool stop) {
            py::gil_scoped_release unlocked;
            p.file->bytes()->finish_read_ahead(stop);
        }, py::arg("stop") = false,
             "wait for the read-ahead that opening the file started (gguf/read_ahead.h) to end: at once when stop, "
             "else once it has read all the load's progress allows (its distance past read_through, or the whole file)")
        .def_property_readonly("read_ahead_windows", [](const Model& p) { return p.file->bytes()->read_ahead_windows(); },
                               "windows of the file the read-ahead found missing from the page cache and read in")
        .def("read_through", [](const Model& p, uint64_t end) { p.file->bytes()->read_through(end); }, py::arg("end"),
             "tell the read-ahead the load has read the file up to byte `end`")
        .def_property_readonly("read_ahead_state", [](const Model& p) { return read_ahead_state(p.file->bytes()->read_ahead()); },
                               "the read-ahead's windows_read, handled_to (end of the windows it has handled), read_to (the "
                               "load's furthest read_through), distance and running; zeros for a buffer")
        .def("hyperparameters", [](const Model& p) { return hyperparameter_dict(p.hp); },
             "the validated hyperparameters, defaults resolved, and the architecture's forward switches");

    m.def(
        "open_gguf_path",
        [](const std::string& path) {
            py::gil_scoped_release unlocked;
            return held(open_model(path));
        },
        py::arg("path"), "memory-map, parse and validate the GGUF file at `path` (or share the model already open for it)");
    m.def(
        "open_gguf_buffer",
        [](py::object buffer) {
            std::shared_ptr<const ByteSource> bytes = std::make_shared<BorrowedBuffer>(buffer);
            py::gil_scoped_release unlocked;
            return held(load_model(std::move(bytes)));
        },
        py::arg("buffer"), "parse and validate GGUF bytes in a C-contiguous buffer, borrowed without a copy");
    m.def(
        "first_masked",
        [](const py::buffer& data, int width, uint32_t mask, int64_t offset, int64_t stride, int64_t count) -> py::object {
            if (width != 2 && width != 4) throw py::value_error("width must be 2 or 4, not " + std::to_string(width));
            if (offset < 0 || stride < width || count < 0) throw py::value_error("offset, stride and count must fit the buffer");
            const py::buffer_info info = data.request();
            if (info.ndim != 1 || info.strides[0] != info.itemsize) throw py::value_error("data must be a contiguous 1-D buffer");
            const int64_t size = info.size * info.itemsize;
            // Checked by division, not by forming offset + (count - 1) * stride: huge arguments must be refused,
            // not wrapped around into a range that passes.
            if (count > 0 && (offset > size - width || count - 1 > (size - width - offset) / stride))
                throw py::value_error("offset, stride and count must fit the buffer");
            std::optional<int64_t> found;
            {
                py::gil_scoped_release unlocked;
                found = first_masked(static_cast<const uint8_t*>(info.ptr) + offset, width, mask, stride, count);
            }
            return found ? py::object(py::int_(*found)) : py::object(py::none());
        },
        py::arg("data"), py::arg("width"), py::arg("mask"), py::arg("offset"), py::arg("stride"), py::arg("count"),
        "index of the first of `count` floats (`width` bytes, `stride` apart from byte `offset`) whose bits & mask == "
        "mask (a NaN or an infinity), or None");
    m.def(
        "utf8_error_at",
        [](const py::bytes& text) -> py::object {
            const std::string_view view = text;
            const size_t at = utf8_error_at(reinterpret_cast<const uint8_t*>(view.data()), view.size());
            return at == SIZE_MAX ? py::object(py::none()) : py::object(py::int_(at));
        },
        py::arg("text"), "the index of the first invalid byte of `text` as strict UTF-8 (gguf/utf8.h), or None");
    m.def("set_read_ahead_distance", &set_read_ahead_distance, py::arg("bytes"),
          "bytes files opened from now on read ahead of their loads (0: automatic, read_ahead.h); returns the last setting");
    m.def("read_ahead_distance", &read_ahead_distance, "the distance files opened now read ahead of their loads");
    py::class_<ReadAheadProbe>(m, "ReadAheadProbe",
                               "a read-ahead (gguf/read_ahead.h) over a buffer (a mapped file), with its own window and "
                               "distance, for tests")
        .def(py::init<py::handle, uint64_t, uint64_t>(), py::arg("buffer"), py::arg("window"), py::arg("distance"))
        .def("read_through", [](ReadAheadProbe& p, uint64_t end) { p.ahead().read_through(end); }, py::arg("end"))
        .def("wait_idle", [](ReadAheadProbe& p) {
            py::gil_scoped_release unlocked;
            p.ahead().wait_idle();
        }, "return once the reader waits at the bound of the last read_through, or has ended")
        .def("finish", [](ReadAheadProbe& p, bool stop) {
            py::gil_scoped_release unlocked;
            p.ahead().finish(stop);
        }, py::arg("stop"))
        .def_property_readonly("state", [](ReadAheadProbe& p) { return read_ahead_state(&p.ahead()); });
    m.def("open_model_count", &open_model_count, "files held open for sharing (models alive in the cache)");
    m.def("gguf_tensor_types", [] {
        py::list types;
        for (const TensorTypeTraits& t : tensor_type_table())
            types.append(py::make_tuple(t.id, t.name, t.block_size, t.type_size, t.supported));
        return types;
    }, "[(ggml type id, name, block size, bytes per block, supported by the kernels)]");
    m.def("architectures", [] {
        py::dict out;
        for (const Architecture& architecture : architectures()) out[architecture.name] = declaration(architecture);
        return out;
    }, "name -> the architecture's declaration: hyperparameter keys, tensors (name, role, shape), forward switches");
}

}  // namespace ggufsm::bind
