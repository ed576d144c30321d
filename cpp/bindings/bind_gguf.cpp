// Python face of the GGUF parser: open from a path (memory map) or from a
// caller's buffer (borrowed, not copied), metadata as Python values, tensor
// infos, and tensor data as read-only numpy views that keep the bytes alive.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "ggufsm/architecture.h"
#include "ggufsm/errors.h"
#include "ggufsm/gguf.h"

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

struct ParsedModel {
    std::shared_ptr<const File> file;
    HyperParameters hyperparameters;
};

ParsedModel parse_and_validate(std::shared_ptr<const ByteSource> bytes) {
    ParsedModel model;
    model.file = parse(std::move(bytes));
    model.hyperparameters = validate_model(*model.file);
    return model;
}

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

py::dict metadata_dict(const ParsedModel& model) {
    const File& file = *model.file;
    py::dict metadata;
    for (const MetadataEntry& entry : file.metadata) {
        py::object key = steal(PyUnicode_DecodeUTF8(entry.key.data(), static_cast<Py_ssize_t>(entry.key.size()), "strict"));
        metadata[key] = steal(value_to_python(file, entry.value));
    }
    return metadata;
}

// (name, ggml type id, shape in ggml order, absolute offset, n_bytes) per tensor, in file order.
py::list tensor_infos(const ParsedModel& model) {
    py::list infos;
    for (const TensorInfo& info : model.file->tensors) {
        py::tuple shape(info.n_dims);
        for (uint32_t d = 0; d < info.n_dims; ++d) shape[d] = py::int_(info.ne[d]);
        infos.append(py::make_tuple(py::str(info.name.data(), info.name.size()), info.type, shape, info.offset, info.n_bytes));
    }
    return infos;
}

// A read-only uint8 view [n_bytes] of one tensor's data; the capsule keeps the bytes alive.
py::array tensor_view(const ParsedModel& model, size_t index) {
    if (index >= model.file->tensors.size())
        throw ggufsm::Error(ggufsm::code::InvalidInput, "tensor index " + std::to_string(index) + " is out of range 0.." +
                                                            std::to_string(model.file->tensors.size()));
    const TensorInfo& info = model.file->tensors[index];
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
    d["output_tied"] = hp.output_tied;
    d["tokenizer_model"] = hp.tokenizer_model;
    return d;
}

}  // namespace

namespace ggufsm::bind {

void gguf(py::module_& m) {
    py::class_<ParsedModel>(m, "GgufModel", "A parsed and validated GGUF file (see ggufsm.reference.gguf_file)")
        .def_property_readonly("source", [](const ParsedModel& p) { return p.file->bytes()->describe(); })
        .def_property_readonly("version", [](const ParsedModel& p) { return p.file->version; })
        .def_property_readonly("alignment", [](const ParsedModel& p) { return p.file->alignment; })
        .def_property_readonly("data_offset", [](const ParsedModel& p) { return p.file->data_offset; })
        .def_property_readonly("file_size", [](const ParsedModel& p) { return p.file->file_size(); })
        .def_property_readonly("architecture", [](const ParsedModel& p) { return p.hyperparameters.architecture; })
        .def("metadata", &metadata_dict, "metadata key -> Python value (ints, floats, str, bool, lists), in file order")
        .def("tensor_infos", &tensor_infos, "[(name, ggml type id, shape (ggml order), absolute offset, n_bytes)]")
        .def("tensor_data", &tensor_view, py::arg("index"), "read-only uint8 view [n_bytes] of tensor `index`")
        .def("hyperparameters", [](const ParsedModel& p) { return hyperparameter_dict(p.hyperparameters); });

    m.def(
        "open_gguf_path",
        [](const std::string& path) {
            py::gil_scoped_release unlocked;
            return parse_and_validate(map_file(path));
        },
        py::arg("path"), "memory-map, parse and validate the GGUF file at `path`");
    m.def(
        "open_gguf_buffer",
        [](py::object buffer) {
            std::shared_ptr<const ByteSource> bytes = std::make_shared<BorrowedBuffer>(buffer);
            py::gil_scoped_release unlocked;
            return parse_and_validate(std::move(bytes));
        },
        py::arg("buffer"), "parse and validate GGUF bytes in a C-contiguous buffer, borrowed without a copy");
    m.def("gguf_tensor_types", [] {
        py::list types;
        for (const TensorTypeTraits& t : tensor_type_table())
            types.append(py::make_tuple(t.id, t.name, t.block_size, t.type_size, t.supported));
        return types;
    }, "[(ggml type id, name, block size, bytes per block, supported by the kernels)]");
}

}  // namespace ggufsm::bind
