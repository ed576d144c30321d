// Python face of the tokenizer's tables (tokenizer/string_table.h): a vocabulary or a merge list
// built from a GGUF file's metadata straight from the validated header copy, or from a Python list
// (a tokenizer built from a plain mapping), and read one entry at a time. The table is a read-only
// mapping str -> position (get, [], in) and gives an entry's text by position (text).
#include <climits>
#include <memory>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "gguf/model.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/string_table.h"

namespace py = pybind11;
using ggufsm::tokenizer::StringTable;

namespace {

using TablePtr = std::shared_ptr<StringTable>;

py::object steal(PyObject* object) {
    if (object == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(object);
}

// A str's UTF-8, or false when `key` is not a str (or has no UTF-8: lone surrogates), with no error
// left set: such a key is simply in no table.
bool utf8_of(py::handle key, std::string_view& out) {
    if (!PyUnicode_Check(key.ptr())) return false;
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(key.ptr(), &size);
    if (data == nullptr) {
        PyErr_Clear();
        return false;
    }
    out = {data, static_cast<size_t>(size)};
    return true;
}

int64_t position_of(const StringTable& table, py::handle key) {
    std::string_view text;
    return utf8_of(key, text) ? table.find(text) : StringTable::kAbsent;
}

py::object text_at(const StringTable& table, int64_t i) {
    if (i < 0) i += static_cast<int64_t>(table.size());
    if (i < 0 || static_cast<size_t>(i) >= table.size()) throw py::index_error("string table index out of range");
    const std::string_view text = table.at(static_cast<size_t>(i));
    return steal(PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "strict"));
}

// From a list of str: TypeError naming the first item that is not a str, ValueError the first with no
// UTF-8 (a lone surrogate); the caller turns either into InvalidModel naming the key.
TablePtr from_list(const py::list& items, bool keep_first, bool name_empty) {
    auto table = std::make_shared<StringTable>();
    const Py_ssize_t count = PyList_GET_SIZE(items.ptr());
    table->reserve(static_cast<size_t>(count), static_cast<size_t>(count) * 8);
    for (Py_ssize_t i = 0; i < count; ++i) {
        PyObject* item = PyList_GET_ITEM(items.ptr(), i);
        if (!PyUnicode_Check(item)) {
            throw py::type_error("item " + std::to_string(i) + " is " + Py_TYPE(item)->tp_name + ", not str");
        }
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(item, &size);
        if (data == nullptr) {
            PyErr_Clear();
            throw py::value_error("item " + std::to_string(i) + " is not valid Unicode");
        }
        table->add({data, static_cast<size_t>(size)}, name_empty);
    }
    table->build_index(keep_first);
    return table;
}

// From an array of strings in a file's metadata, read from the validated header copy (its strings
// are valid UTF-8: the parse checks them); None when the value is not an array of strings, for the
// caller to convert and refuse by name.
py::object from_file(const ggufsm::gguf::Model& model, const std::string& key, bool keep_first, bool name_empty) {
    using ggufsm::gguf::ValueType;
    const ggufsm::gguf::File& file = *model.file;
    const ggufsm::gguf::MetadataEntry* entry = file.find(key);
    if (entry == nullptr) throw py::key_error(key);
    const ggufsm::gguf::Value& value = entry->value;
    if (value.type != ValueType::ARRAY || value.element_type != ValueType::STRING || value.count > INT32_MAX) return py::none();
    auto table = std::make_shared<StringTable>();
    {
        py::gil_scoped_release unlocked;
        table->reserve(static_cast<size_t>(value.count), static_cast<size_t>(value.byte_size));
        ggufsm::gguf::for_each_element(file, value, [&](const ggufsm::gguf::Value& element) {
            table->add(file.string_value(element), name_empty);
        });
        table->build_index(keep_first);
    }
    return py::cast(table);
}

// The words of `text` (a list of str that concatenate back to it) as the GPT-2 pre-tokenizer cuts them.
py::list pretokenize_gpt2(const py::str& text, bool split_digits) {
    PyObject* object = text.ptr();
    const Py_ssize_t length = PyUnicode_GET_LENGTH(object);
    const int kind = PyUnicode_KIND(object);
    const void* data = PyUnicode_DATA(object);
    std::vector<uint32_t> codes(static_cast<size_t>(length));
    for (Py_ssize_t i = 0; i < length; ++i) codes[static_cast<size_t>(i)] = PyUnicode_READ(kind, data, i);
    py::list words;
    for (const auto& [start, stop] : ggufsm::tokenizer::split_gpt2(codes, split_digits)) {
        words.append(steal(PyUnicode_Substring(object, static_cast<Py_ssize_t>(start), static_cast<Py_ssize_t>(stop))));
    }
    return words;
}

}  // namespace

namespace ggufsm::bind {

void tokenizer(py::module_& m) {
    py::class_<StringTable, TablePtr>(m, "StringTable",
                                      "strings in one buffer with an index: str -> position (get, [], in), position -> text")
        .def("__len__", &StringTable::size)
        .def("text", &text_at, py::arg("position"), "the entry at a position, as a str")
        .def("get", [](const StringTable& table, py::handle key, py::object fallback) -> py::object {
            const int64_t found = position_of(table, key);
            return found < 0 ? fallback : py::int_(found);
        }, py::arg("key"), py::arg("default") = py::none())
        .def("__getitem__", [](const StringTable& table, py::handle key) {
            const int64_t found = position_of(table, key);
            if (found < 0) throw py::key_error(py::repr(key).cast<std::string>());
            return found;
        })
        .def("__contains__", [](const StringTable& table, py::handle key) { return position_of(table, key) >= 0; })
        .def("byte_lengths", [](const StringTable& table, py::object positions) {
            // Only the entries asked for: a whole vocabulary's lengths are a fresh 2 MiB array on Gemma 3,
            // whose first touch cost its load 4-9 ms, for the 6,414 special tokens the tokenizer sorts.
            using Positions = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
            const Positions wanted = positions.is_none() ? Positions() : positions.cast<Positions>();
            const bool all = positions.is_none();
            const size_t count = all ? table.size() : static_cast<size_t>(wanted.size());
            py::array_t<int64_t> lengths(static_cast<py::ssize_t>(count));
            int64_t* out = lengths.mutable_data();
            for (size_t i = 0; i < count; ++i) {
                const int64_t position = all ? static_cast<int64_t>(i) : wanted.data()[i];
                if (position < 0 || static_cast<size_t>(position) >= table.size()) throw py::index_error("position out of range");
                out[i] = static_cast<int64_t>(table.byte_length(static_cast<size_t>(position)));
            }
            return lengths;
        }, py::arg("positions") = py::none(),
           "each entry's length in UTF-8 bytes (int64 array), or the given positions' entries' in their order")
        .def("first_repeat", [](const StringTable& table) -> py::object {
            const auto [later, earlier] = table.first_repeat();
            if (later < 0) return py::none();
            return py::make_tuple(later, earlier);
        }, "(later, earlier) positions of the first string listed twice, or None")
        .def("first_lacking_space", [](const StringTable& table) { return table.first_lacking_after_first_character(' '); },
             "the first entry with no space after its first character, or -1")
        .def("occurring", [](const StringTable& table, const std::vector<int64_t>& positions, py::handle text) {
            // The positions (in their order) whose entry occurs in `text`: UTF-8 is self-synchronizing,
            // so a byte-level find is a character-level find.
            std::string_view haystack;
            py::list found;
            if (!utf8_of(text, haystack)) throw py::type_error("text must be a str with UTF-8");
            for (const int64_t position : positions) {
                if (position < 0 || static_cast<size_t>(position) >= table.size()) throw py::index_error("position out of range");
                const std::string_view needle = table.at(static_cast<size_t>(position));
                if (haystack.find(needle) != std::string_view::npos) found.append(position);
            }
            return found;
        }, py::arg("positions"), py::arg("text"));

    m.def("pretokenize_gpt2", &pretokenize_gpt2, py::arg("text"), py::arg("split_digits"),
          "the words of text as GPT-2's pre-tokenizer cuts them (split_digits: each \\p{N} character first cut out alone)");
    m.def("string_table_from_list", &from_list, py::arg("items"), py::arg("keep_first") = false,
          py::arg("name_empty") = false, "a StringTable of a list of str (TypeError / ValueError name a bad item)");
    m.def("string_table_from_file", &from_file, py::arg("model"), py::arg("key"), py::arg("keep_first") = false,
          py::arg("name_empty") = false, "a StringTable of a file's array of strings, or None for any other value");
}

}  // namespace ggufsm::bind
