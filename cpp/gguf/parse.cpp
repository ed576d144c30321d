// GGUF container parse and validate: header, metadata, tensor infos, layout.
//
// Every length, count and offset read from the file is checked against the
// bytes that are really left before it is used, and every size computed from
// them uses checked arithmetic, so counts can never make us read out of
// bounds or reserve more memory than the file could describe.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>

#include "errors.h"
#include "gguf/gguf.h"
#include "gguf/utf8.h"

namespace ggufsm::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint64_t kHeaderBytes = 24;
constexpr uint64_t kDefaultAlignment = 32;
// Smallest possible records, used to bound counts by the bytes left:
// a kv is key length u64 + empty key + type u32 + a 1-byte value;
// a tensor info is name length u64 + a 1-byte name + n_dims u32 + one dim u64 + type u32 + offset u64.
constexpr uint64_t kMinMetadataEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
// Arrays of arrays nest; a bound keeps a crafted file from exhausting the stack.
constexpr int kMaxArrayDepth = 16;

std::string quoted(std::string_view text) {
    std::string out = "'";
    out.append(text.substr(0, 200));
    if (text.size() > 200) out += "...";
    return out + "'";
}

[[noreturn]] void invalid(const std::string& message) { throw Error(code::InvalidModel, message); }
[[noreturn]] void unsupported(const std::string& message) { throw Error(code::UnsupportedModel, message); }

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// A bounds-checked cursor over the file. `what` callables build the field's
// description only when a check fails, so the happy path allocates nothing.
class Cursor {
public:
    // check_text: strings' bytes are checked as UTF-8 (the full parse); else only their lengths (the extent pass).
    Cursor(const uint8_t* base, uint64_t size, bool check_text) : base_(base), size_(size), check_text_(check_text) {}

    uint64_t position() const { return position_; }
    uint64_t remaining() const { return size_ - position_; }

    template <class What>
    void need(uint64_t n, const What& what) const {
        if (n > remaining()) {
            invalid(what() + " at offset " + std::to_string(position_) + " needs " + std::to_string(n) +
                    " bytes but the file ends after " + std::to_string(remaining()) + " (file size " +
                    std::to_string(size_) + ")");
        }
    }
    template <class What>
    void skip(uint64_t n, const What& what) {
        need(n, what);
        position_ += n;
    }
    template <class T, class What>
    T read(const What& what) {
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, base_ + position_, sizeof(T));
        position_ += sizeof(T);
        return value;
    }
    // A string: u64 length, then that many UTF-8 bytes.
    template <class What>
    std::string_view read_string(const What& what) {
        const uint64_t start = position_;
        const auto length = read<uint64_t>([&] { return what() + ": string length"; });
        if (length > remaining()) {
            invalid(what() + " at offset " + std::to_string(start) + ": string length " + std::to_string(length) +
                    " runs past the end of the file (" + std::to_string(remaining()) + " bytes left, file size " +
                    std::to_string(size_) + ")");
        }
        const uint8_t* text = base_ + position_;
        if (const size_t bad = check_text_ ? utf8_error_at(text, size_t(length)) : SIZE_MAX; bad != SIZE_MAX) {
            invalid(what() + " at offset " + std::to_string(start) + ": invalid UTF-8 at byte offset " +
                    std::to_string(position_ + bad));
        }
        position_ += length;
        return {reinterpret_cast<const char*>(text), static_cast<size_t>(length)};
    }

    // `count` strings from here, in one loop: each length in bounds and, when checking text, each string valid
    // UTF-8 (the DFA run across them all, its state required back between characters at every boundary). True
    // and past them all when so; else false, at the same position, for read_string to find and name the problem.
    // A vocabulary's strings one read_string call each cost a call, a frame and a check a string (262k on Gemma 3).
    bool skip_strings(uint64_t count) {
        const uint64_t start = position_;
        uint64_t state = kUtf8Accept;
        bool whole = true;  // every string began and ended between characters
        for (uint64_t i = 0; i < count; ++i) {
            if (remaining() < 8) break;
            uint64_t length;
            std::memcpy(&length, base_ + position_, 8);
            position_ += 8;
            if (length > remaining()) break;
            if (check_text_) {
                const uint8_t* text = base_ + position_;
                for (uint64_t k = 0; k < length; ++k) state = utf8_step(state, text[k]);
                whole &= utf8_accepts(state);
            }
            position_ += length;
            if (i + 1 == count && whole) return true;
        }
        if (count == 0) return true;
        position_ = start;
        return false;
    }

private:
    const uint8_t* base_;
    uint64_t size_;
    bool check_text_;
    uint64_t position_ = 0;
};

// Builds a field's description for an error message, only when one is raised.
using Describe = std::function<std::string()>;

// Full: every check, and the File's metadata, index and layout. Extent: only what finds where the header ends
// (every length, count and bound on the way, no UTF-8, no metadata kept): parse's first pass.
enum class Pass { Full, Extent };

class Parser {
public:
    Parser(File& file, Pass pass) : file_(file), cursor_(file.header(), file.header_size(), pass == Pass::Full), pass_(pass) {}

    void run() {
        read_header();
        read_metadata();
        read_tensor_infos();
        if (pass_ == Pass::Extent) {
            file_.header_end = cursor_.position();
            return;
        }
        read_alignment();
        place_tensor_data();
    }

private:
    File& file_;
    Cursor cursor_;
    Pass pass_;
    uint64_t tensor_count_ = 0;
    uint64_t kv_count_ = 0;

    void read_header() {
        // Neither the bytes nor the size of a file that is not GGUF appear in a
        // message: a load error must not become a way to read any file.
        uint32_t magic = 0;
        if (file_.header_size() >= 4) std::memcpy(&magic, file_.header(), 4);
        if (magic != kMagic) invalid("not a GGUF file: it does not start with the magic 'GGUF' (offset 0)");
        cursor_.skip(4, [] { return std::string("magic"); });
        const auto version = cursor_.read<uint32_t>([] { return std::string("header field 'version'"); });
        if (version != 2 && version != 3) {
            if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3)
                unsupported("version field at offset 4 reads as big-endian GGUF (version " +
                            std::to_string(__builtin_bswap32(version)) + "); this runtime reads little-endian files");
            unsupported("GGUF version " + std::to_string(version) +
                        " at offset 4 is not supported (this runtime reads versions 2 and 3)");
        }
        file_.version = version;
        tensor_count_ = cursor_.read<uint64_t>([] { return std::string("header field 'tensor_count'"); });
        kv_count_ = cursor_.read<uint64_t>([] { return std::string("header field 'kv_count'"); });
        check_count("kv_count", 16, kv_count_, kMinMetadataEntryBytes);
        check_count("tensor_count", 8, tensor_count_, kMinTensorInfoBytes);
        uint64_t needed = kv_count_ * kMinMetadataEntryBytes + tensor_count_ * kMinTensorInfoBytes;  // both bounded above
        if (needed > cursor_.remaining())
            invalid("header counts at offset 8: " + std::to_string(tensor_count_) + " tensors and " +
                    std::to_string(kv_count_) + " metadata entries need at least " + std::to_string(needed) +
                    " bytes but only " + std::to_string(cursor_.remaining()) + " follow the header");
    }

    void check_count(const char* field, uint64_t offset, uint64_t count, uint64_t min_bytes) {
        if (count > cursor_.remaining() / min_bytes)
            invalid(std::string("header field '") + field + "' at offset " + std::to_string(offset) + " is " +
                    std::to_string(count) + ": impossible, each needs at least " + std::to_string(min_bytes) +
                    " bytes and only " + std::to_string(cursor_.remaining()) + " follow the header");
    }

    void read_metadata() {
        const bool keep = pass_ == Pass::Full;
        if (keep) file_.metadata.reserve(kv_count_);  // bounded by the file size (check_count)
        if (keep) file_.metadata_index.reserve(kv_count_);
        for (uint64_t index = 0; index < kv_count_; ++index) {
            const uint64_t entry_offset = cursor_.position();
            const std::string_view key =
                cursor_.read_string([&] { return "key of metadata entry #" + std::to_string(index); });
            const Describe where = [&] { return "metadata " + quoted(key) + " (entry at offset " + std::to_string(entry_offset) + ")"; };
            const uint64_t type_offset = cursor_.position();
            const auto raw_type = cursor_.read<uint32_t>([&] { return where() + ": value type"; });
            if (raw_type >= kValueTypeCount)
                invalid(where() + ": unknown value type " + std::to_string(raw_type) + " at offset " +
                        std::to_string(type_offset));
            const Value value = read_value(static_cast<ValueType>(raw_type), 0, where);
            if (!keep) continue;
            if (!file_.metadata_index.emplace(key, file_.metadata.size()).second) invalid(where() + ": duplicate key");
            file_.metadata.push_back({key, entry_offset, value});
        }
    }

    Value read_value(ValueType type, int depth, const Describe& where) {
        Value value{type, cursor_.position(), 0, ValueType::UINT8, 0};
        if (type == ValueType::STRING) {
            cursor_.read_string([&] { return where() + ": string value"; });
        } else if (type == ValueType::ARRAY) {
            read_array(value, depth, where);
        } else {
            cursor_.skip(value_type_size(type), [&] { return where() + ": " + value_type_name(type) + " value"; });
        }
        value.byte_size = cursor_.position() - value.offset;
        return value;
    }

    void read_array(Value& value, int depth, const Describe& where) {
        if (depth >= kMaxArrayDepth)
            unsupported(where() + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " at offset " +
                        std::to_string(value.offset));
        const auto raw_element = cursor_.read<uint32_t>([&] { return where() + ": array element type"; });
        if (raw_element >= kValueTypeCount)
            invalid(where() + ": unknown array element type " + std::to_string(raw_element) + " at offset " +
                    std::to_string(value.offset));
        value.element_type = static_cast<ValueType>(raw_element);
        const uint64_t count_offset = cursor_.position();
        value.count = cursor_.read<uint64_t>([&] { return where() + ": array length"; });
        const uint32_t fixed = value_type_size(value.element_type);
        const uint64_t min_element = fixed ? fixed : value.element_type == ValueType::STRING ? 8 : 12;
        if (value.count > cursor_.remaining() / min_element)
            invalid(where() + ": array length " + std::to_string(value.count) + " at offset " +
                    std::to_string(count_offset) + " needs at least " + std::to_string(min_element) + " bytes per " +
                    value_type_name(value.element_type) + " but only " + std::to_string(cursor_.remaining()) +
                    " bytes are left");
        if (fixed) {
            cursor_.skip(value.count * fixed, [&] { return where() + ": array data"; });  // product bounded above
            return;
        }
        if (value.element_type == ValueType::STRING && cursor_.skip_strings(value.count)) return;
        for (uint64_t i = 0; i < value.count; ++i) {
            auto element_where = [&] { return where() + ", element " + std::to_string(i); };
            if (value.element_type == ValueType::STRING) {
                cursor_.read_string(element_where);
            } else {
                // Nested arrays recurse: a type-erased description keeps the
                // recursion from instantiating a new template per level.
                Value element{ValueType::ARRAY, cursor_.position(), 0, ValueType::UINT8, 0};
                read_array(element, depth + 1, element_where);
            }
        }
    }

    void read_tensor_infos() {
        file_.tensors.reserve(tensor_count_);  // bounded by the file size (check_count)
        for (uint64_t index = 0; index < tensor_count_; ++index) {
            TensorInfo info{};
            info.info_offset = cursor_.position();
            info.name = cursor_.read_string([&] { return "name of tensor info #" + std::to_string(index); });
            auto where = [&] { return "tensor " + quoted(info.name) + " (info at offset " + std::to_string(info.info_offset) + ")"; };
            if (info.name.empty()) invalid(where() + ": empty tensor name");
            const uint64_t dims_offset = cursor_.position();
            info.n_dims = cursor_.read<uint32_t>([&] { return where() + ": n_dims"; });
            if (info.n_dims < 1 || info.n_dims > 4)
                invalid(where() + ": n_dims " + std::to_string(info.n_dims) + " at offset " + std::to_string(dims_offset) +
                        " is outside 1..4");
            info.n_elements = 1;
            for (uint32_t d = 0; d < 4; ++d) info.ne[d] = 1;
            for (uint32_t d = 0; d < info.n_dims; ++d) {
                const uint64_t dim_offset = cursor_.position();
                info.ne[d] = cursor_.read<uint64_t>([&] { return where() + ": dimension " + std::to_string(d); });
                if (info.ne[d] == 0)
                    invalid(where() + ": dimension " + std::to_string(d) + " at offset " + std::to_string(dim_offset) + " is 0");
                if (!checked_mul(info.n_elements, info.ne[d], &info.n_elements) || info.n_elements > INT64_MAX)
                    invalid(where() + ": element count overflows at dimension " + std::to_string(d) + " (offset " +
                            std::to_string(dim_offset) + ")");
            }
            const uint64_t type_offset = cursor_.position();
            info.type = cursor_.read<uint32_t>([&] { return where() + ": type"; });
            const TensorTypeTraits* traits = tensor_type_traits(info.type);
            if (traits == nullptr)
                unsupported(where() + ": tensor type " + std::to_string(info.type) + " at offset " +
                            std::to_string(type_offset) + " is not a ggml type this runtime knows");
            if (info.ne[0] % traits->block_size != 0)
                invalid(where() + ": row length ne[0]=" + std::to_string(info.ne[0]) + " (offset " +
                        std::to_string(dims_offset + 4) + ") is not a multiple of the " + traits->name +
                        " block size " + std::to_string(traits->block_size));
            if (!checked_mul(info.n_elements / traits->block_size, traits->type_size, &info.n_bytes))
                invalid(where() + ": data size overflows (" + std::to_string(info.n_elements) + " elements of " +
                        traits->name + ")");
            info.offset = cursor_.read<uint64_t>([&] { return where() + ": data offset"; });  // relative for now
            file_.tensors.push_back(info);
        }
    }

    void read_alignment() {
        const MetadataEntry* entry = file_.find("general.alignment");
        if (entry == nullptr) return;
        const std::string where = "metadata 'general.alignment' (entry at offset " + std::to_string(entry->offset) + ")";
        if (entry->value.type != ValueType::UINT32)
            invalid(where + ": type is " + value_type_name(entry->value.type) + ", expected UINT32");
        const uint32_t alignment = file_.read_u32(entry->value.offset);
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
            invalid(where + ": alignment " + std::to_string(alignment) + " is not a non-zero power of two");
        file_.alignment = alignment;
    }

    void place_tensor_data() {
        const uint64_t end_of_infos = cursor_.position();
        file_.header_end = end_of_infos;
        const uint64_t padding = (file_.alignment - end_of_infos % file_.alignment) % file_.alignment;
        file_.data_offset = end_of_infos + padding;  // no overflow: end_of_infos <= file size < 2^63
        const uint64_t size = file_.file_size();
        file_.tensor_index.reserve(file_.tensors.size());
        for (size_t index = 0; index < file_.tensors.size(); ++index) {
            TensorInfo& info = file_.tensors[index];
            auto where = [&] { return "tensor " + quoted(info.name) + " (info at offset " + std::to_string(info.info_offset) + ")"; };
            if (const auto [at, fresh] = file_.tensor_index.emplace(info.name, index); !fresh) {
                const TensorInfo* first = &file_.tensors[at->second];
                invalid(where() + ": duplicate tensor name (first at info offset " + std::to_string(first->info_offset) + ")");
            }
            const uint64_t relative = info.offset;
            if (relative % file_.alignment != 0)
                invalid(where() + ": data offset " + std::to_string(relative) + " is not a multiple of the alignment " +
                        std::to_string(file_.alignment));
            uint64_t end = 0;
            if (!checked_add(file_.data_offset, relative, &info.offset) || !checked_add(info.offset, info.n_bytes, &end) ||
                end > size)
                invalid(where() + ": data at offset " + std::to_string(file_.data_offset) + " + " + std::to_string(relative) +
                        " (" + std::to_string(info.n_bytes) + " bytes) runs past the end of the file (size " +
                        std::to_string(size) + ")");
        }
        check_no_overlap();
    }

    void check_no_overlap() const {
        std::vector<const TensorInfo*> by_offset;
        by_offset.reserve(file_.tensors.size());
        for (const TensorInfo& info : file_.tensors) by_offset.push_back(&info);
        std::sort(by_offset.begin(), by_offset.end(),
                  [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
        for (size_t i = 1; i < by_offset.size(); ++i) {
            const TensorInfo& previous = *by_offset[i - 1];
            const TensorInfo& next = *by_offset[i];
            if (next.offset < previous.offset + previous.n_bytes)
                invalid("tensor " + quoted(next.name) + " (info at offset " + std::to_string(next.info_offset) +
                        "): data at offset " + std::to_string(next.offset) + " overlaps tensor " + quoted(previous.name) +
                        " (data at offset " + std::to_string(previous.offset) + ", " + std::to_string(previous.n_bytes) +
                        " bytes)");
        }
    }
};

}  // namespace

// ---------------------------------------------------------------- File

File::File(std::shared_ptr<const ByteSource> bytes, std::vector<uint8_t> header)
    : bytes_(std::move(bytes)), header_(std::move(header)) {
    const bool own = !header_.empty();
    header_data_ = own ? header_.data() : bytes_->data();
    header_size_ = own ? header_.size() : bytes_->size();
}

const MetadataEntry* File::find(std::string_view key) const {
    const auto found = metadata_index.find(key);
    return found == metadata_index.end() ? nullptr : &metadata[found->second];
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    const auto found = tensor_index.find(name);
    return found == tensor_index.end() ? nullptr : &tensors[found->second];
}

uint64_t File::read_u64(uint64_t offset) const {
    uint64_t value;
    std::memcpy(&value, header() + offset, 8);
    return value;
}

uint32_t File::read_u32(uint64_t offset) const {
    uint32_t value;
    std::memcpy(&value, header() + offset, 4);
    return value;
}

std::string_view File::read_string(uint64_t offset) const {
    return {reinterpret_cast<const char*>(header() + offset + 8), static_cast<size_t>(read_u64(offset))};
}

std::string_view File::string_value(const Value& value) const { return read_string(value.offset); }

int64_t File::integer_value(const Value& value) const {
    const uint8_t* p = header() + value.offset;
    switch (value.type) {
        case ValueType::UINT8: return *p;
        case ValueType::INT8: return static_cast<int8_t>(*p);
        case ValueType::UINT16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
        case ValueType::INT16: { int16_t v; std::memcpy(&v, p, 2); return v; }
        case ValueType::UINT32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
        case ValueType::INT32: { int32_t v; std::memcpy(&v, p, 4); return v; }
        case ValueType::UINT64: { uint64_t v; std::memcpy(&v, p, 8); return v > INT64_MAX ? INT64_MAX : static_cast<int64_t>(v); }
        case ValueType::INT64: { int64_t v; std::memcpy(&v, p, 8); return v; }
        default: return 0;
    }
}

double File::float_value(const Value& value) const {
    if (value.type == ValueType::FLOAT32) {
        float v;
        std::memcpy(&v, header() + value.offset, 4);
        return v;
    }
    if (value.type == ValueType::FLOAT64) {
        double v;
        std::memcpy(&v, header() + value.offset, 8);
        return v;
    }
    return static_cast<double>(integer_value(value));
}

bool File::bool_value(const Value& value) const { return header()[value.offset] != 0; }

namespace detail {
uint64_t element_extent(const File& file, ValueType type, uint64_t offset) {
    if (const uint32_t fixed = value_type_size(type)) return fixed;
    if (type == ValueType::STRING) return 8 + file.read_u64(offset);
    const auto element_type = static_cast<ValueType>(file.read_u32(offset));
    const uint64_t count = file.read_u64(offset + 4);
    if (const uint32_t fixed = value_type_size(element_type)) return 12 + count * fixed;
    uint64_t extent = 12;
    for (uint64_t i = 0; i < count; ++i) extent += element_extent(file, element_type, offset + extent);
    return extent;
}
}  // namespace detail

std::shared_ptr<const File> parse(std::shared_ptr<const ByteSource> bytes) {
    // Pass 1 over the bytes as they are finds where the header ends (and
    // refuses a malformed file early); pass 2 validates the private copy that
    // the File then serves from, at the cost of the header's bytes once in memory.
    //
    // Pass 1 is the extent pass: the lengths and counts that find the header's end, each bounds-checked, but no
    // UTF-8 and no metadata index. The UTF-8 check of the vocabulary was about two thirds of an open's CPU, made
    // twice (perf over 60 opens of Gemma 3, 262k tokens, most with a 3-byte U+2581); checked once, an open's CPU
    // went 5.1 -> 3.4 ms on SmolLM2 and 14.4 -> 9.3 ms on Gemma 3 (best of 20, _core.open_gguf_path), and with
    // the check a DFA run over each string array in one loop (utf8.h, Cursor::skip_strings) to 2.1-2.4 and 6.0-6.1
    // ms (baseline 5.3-5.8 and 15-19.6 ms in the same interleaved runs, load average 9-10). Every check
    // pass 1 skips, pass 2 makes on the copy (the same bytes at the same offsets, so the same message). A file pass 1 refuses is parsed again in full from the mapping, so that the error raised is
    // the first problem in file order (an invalid UTF-8 key before a truncated array names the key), as a full
    // parse finds it.
    uint64_t header_end = 0;
    {
        File probe(bytes, {});
        try {
            Parser(probe, Pass::Extent).run();
        } catch (const Error&) {
            File full(bytes, {});
            Parser(full, Pass::Full).run();
            throw;  // found nothing this time (the file changed between the two): pass 1's error
        }
        header_end = probe.header_end;
    }
    std::vector<uint8_t> header(bytes->data(), bytes->data() + header_end);
    if (header.empty()) header.push_back(0);  // unreachable for a parsed file (its magic alone is 4 bytes)
    auto file = std::make_shared<File>(std::move(bytes), std::move(header));
    Parser(*file, Pass::Full).run();
    return file;
}

}  // namespace ggufsm::gguf
