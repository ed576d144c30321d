// GGUF parse and validate, zero-copy over a memory map.
//
// A GGUF file (versions 2 and 3, little-endian) is
//   header      magic "GGUF" (4) | version u32 | tensor_count u64 | kv_count u64
//   metadata    kv_count x { key: string | value type u32 | value }
//   tensor info tensor_count x { name: string | n_dims u32 | ne u64[n_dims] | type u32 | offset u64 }
//   padding     up to `general.alignment` (default 32)
//   data        tensors at their (aligned) offsets relative to the data start
// where string = { length u64 | UTF-8 bytes } and an array value is
// { element type u32 | count u64 | elements }.
//
// parse reads all of it and checks every length, count and offset
// against the bytes that are really there before trusting it, so a malformed
// file is refused with ggufsm::Error (InvalidModel or UnsupportedModel) whose
// message names the field or tensor and its byte offset.
//
// The header (everything before the tensor data: metadata and tensor infos)
// is copied once and validated in the copy: the file may change on disk after
// it was mapped, and a length field read again from the live mapping after
// validation could point anywhere. Keys, strings and array elements are read
// from that copy only; the mapping is read for tensor data alone, and the
// parsed file keeps it alive.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ggufsm::gguf {

class ReadAhead;  // read_ahead.h

// ---------------------------------------------------------------- byte sources

// Read-only bytes of one model: a file's memory map, or a caller's buffer
// borrowed for load-from-bytes. Views into it (metadata, tensor data) hold a
// shared_ptr to it, so it lives while any view does.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }
    virtual std::string describe() const = 0;  // for messages: the path, or "<N bytes>"
    // Why these bytes can no longer be trusted, or "" while they can: a file's
    // mapping is untrusted once the file's size or modification time differs
    // from when it was mapped, or a page of it faulted (fault_guard.h). A
    // caller's buffer is the caller's, and always trusted.
    virtual std::string changed() const { return {}; }
    // Throws ModelUnavailable naming changed() unless it is "".
    void check_intact() const;
    // Ends the read-ahead that mapping a file started (read_ahead.h): after its current window when
    // `stop`, else once it has read the whole file. A caller's buffer has none.
    virtual void finish_read_ahead(bool /*stop*/) const {}
    // Windows of the file the read-ahead found missing from the page cache and read in.
    virtual uint64_t read_ahead_windows() const { return 0; }
    // The load has read these bytes up to offset `end`: the read-ahead keeps its distance past the furthest such
    // point (read_ahead.h). The parse, the repack and the scans report it.
    virtual void read_through(uint64_t /*end*/) const {}
    // The file's read-ahead, for reports and tests; nullptr for a caller's buffer.
    virtual ReadAhead* read_ahead() const { return nullptr; }

protected:
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
};

// A file's identity while its contents are unchanged: device, inode,
// modification time and size. A file rewritten in place or renamed over gets
// a new one.
struct FileIdentity {
    uint64_t device = 0, inode = 0;
    int64_t mtime_s = 0, mtime_ns = 0, size = 0;
    bool operator<(const FileIdentity& other) const;
};

// A model file opened for reading, identified by the descriptor that will be
// mapped (so a file replaced between a stat and the open is never mistaken
// for another). Missing path, directory, not a regular file, unreadable:
// ModelUnavailable, each with its own message.
class OpenedFile {
public:
    explicit OpenedFile(const std::string& path);
    ~OpenedFile();
    OpenedFile(const OpenedFile&) = delete;
    OpenedFile& operator=(const OpenedFile&) = delete;

    const std::string& path() const { return path_; }
    const FileIdentity& identity() const { return identity_; }
    // Maps the whole file read-only (ModelUnavailable if mmap fails).
    std::shared_ptr<const ByteSource> map() const;

private:
    std::string path_;
    int fd_ = -1;
    FileIdentity identity_;
};

// --------------------------------------------------------------- value types

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5,
    FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;
const char* value_type_name(ValueType type);
// Bytes of one scalar of `type`; 0 for STRING and ARRAY (variable size).
uint32_t value_type_size(ValueType type);

// ------------------------------------------------------------- tensor types

// ggml's type numbering (ggml.h `enum ggml_type`, gguf.GGMLQuantizationType);
// one row per type: elements per block and bytes per block. `supported`: this
// runtime's kernels run it (the others parse, then are refused as unsupported).
struct TensorTypeTraits {
    uint32_t id;
    const char* name;
    uint32_t block_size;  // elements per block
    uint32_t type_size;   // bytes per block
    bool supported;
};
// nullptr when `id` is not a ggml type this build knows (never numbered, or
// numbered once and removed).
const TensorTypeTraits* tensor_type_traits(uint32_t id);
const std::vector<TensorTypeTraits>& tensor_type_table();

// ----------------------------------------------------------------- metadata

// One metadata value, located in the file. Scalars and strings are read on
// demand from `offset`; arrays are walked with for_each_element.
struct Value {
    ValueType type;
    uint64_t offset;            // absolute offset of the payload (after the type tag)
    uint64_t byte_size;         // payload bytes in the file
    ValueType element_type;     // ARRAY only
    uint64_t count;             // ARRAY only: number of elements
};

struct MetadataEntry {
    std::string_view key;
    uint64_t offset;            // absolute offset of the entry (its key length)
    Value value;
};

// ------------------------------------------------------------------ tensors

struct TensorInfo {
    std::string_view name;
    uint64_t info_offset;       // absolute offset of the tensor info record
    uint32_t type;              // ggml type id; tensor_type_traits(type) is non-null
    uint32_t n_dims;            // 1..4
    uint64_t ne[4];             // ggml order: ne[0] is the contiguous dimension; unused dims are 1
    uint64_t n_elements;
    uint64_t offset;            // absolute offset of the data in the file
    uint64_t n_bytes;
};

// ---------------------------------------------------------------- the file

class File {
public:
    // `header` is the validated copy of the bytes before the tensor data (see
    // parse); an empty vector reads the header from `bytes` itself (parse's
    // first pass, which only finds where the header ends).
    File(std::shared_ptr<const ByteSource> bytes, std::vector<uint8_t> header);
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    const std::shared_ptr<const ByteSource>& bytes() const { return bytes_; }
    // The mapping: tensor data is read here, at TensorInfo::offset.
    const uint8_t* data() const { return bytes_->data(); }
    uint64_t file_size() const { return bytes_->size(); }
    // The header bytes metadata and tensor infos are read from.
    const uint8_t* header() const { return header_data_; }
    uint64_t header_size() const { return header_size_; }

    uint32_t version = 0;
    uint64_t alignment = 32;
    uint64_t header_end = 0;                   // where the tensor infos end (the header copy's size)
    uint64_t data_offset = 0;                  // absolute offset of the tensor data section
    std::vector<MetadataEntry> metadata;       // in file order
    std::vector<TensorInfo> tensors;           // in file order
    // Name -> index, so that validation is linear in the tensor count.
    std::unordered_map<std::string_view, size_t> metadata_index, tensor_index;

    const MetadataEntry* find(std::string_view key) const;
    const TensorInfo* find_tensor(std::string_view name) const;

    // Readers for validated values in the header copy (no bounds checks needed after parse).
    uint64_t read_u64(uint64_t offset) const;
    uint32_t read_u32(uint64_t offset) const;
    std::string_view read_string(uint64_t offset) const;  // offset of the length prefix
    std::string_view string_value(const Value& value) const;
    // Integer types as int64 (UINT64 above INT64_MAX saturates; callers check ranges).
    int64_t integer_value(const Value& value) const;
    double float_value(const Value& value) const;
    bool bool_value(const Value& value) const;

private:
    std::shared_ptr<const ByteSource> bytes_;
    std::vector<uint8_t> header_;
    const uint8_t* header_data_;
    uint64_t header_size_;
};

bool is_integer(ValueType type);
bool is_float(ValueType type);

// Calls visit(const Value&) for each element of an ARRAY value, in order.
template <class Visit>
void for_each_element(const File& file, const Value& array, Visit&& visit);

// Parses and validates the container (header, metadata, tensor infos,
// alignment, tensor data ranges): a first pass over the bytes finds where the
// header ends, then the header is copied and the copy parsed and validated
// again, so what the returned File serves is exactly what was validated. Does not know about architectures: see
// architecture.h for the model-level checks and model.h for opening a model.
std::shared_ptr<const File> parse(std::shared_ptr<const ByteSource> bytes);

// ------------------------------------------------------------- implementation

namespace detail {
uint64_t element_extent(const File& file, ValueType type, uint64_t offset);
}

template <class Visit>
void for_each_element(const File& file, const Value& array, Visit&& visit) {
    uint64_t position = array.offset + 12;  // element type u32, count u64
    const uint32_t fixed = value_type_size(array.element_type);
    for (uint64_t i = 0; i < array.count; ++i) {
        Value element{array.element_type, position, 0, ValueType::UINT8, 0};
        if (array.element_type == ValueType::ARRAY) {
            element.element_type = static_cast<ValueType>(file.read_u32(position));
            element.count = file.read_u64(position + 4);
        }
        element.byte_size = fixed ? fixed : detail::element_extent(file, array.element_type, position);
        visit(element);
        position += element.byte_size;
    }
}

}  // namespace ggufsm::gguf
