// Model files opened, identified and memory-mapped read-only. The cache that
// shares one mapping (and one parsed model) between opens of one file is in
// open.cpp.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include "errors.h"
#include "gguf/fault_guard.h"
#include "gguf/gguf.h"
#include "gguf/read_ahead.h"

namespace ggufsm::gguf {

namespace {

std::string reason() { return std::string(" (") + std::strerror(errno) + ")"; }

class FileMapping final : public ByteSource {
public:
    // Takes `fd` (kept open: its fstat says whether the mapped file changed since).
    FileMapping(std::string path, int fd, const FileIdentity& identity, void* base)
        : path_(std::move(path)), fd_(fd), identity_(identity), base_(base) {
        data_ = static_cast<const uint8_t*>(base);
        size_ = static_cast<uint64_t>(identity.size);
        if (base_ != nullptr) guard_ = register_mapping(base_, size_);
        read_ahead_ = std::make_unique<ReadAhead>(data_, size_);
    }
    ~FileMapping() override {
        read_ahead_.reset();  // its thread reads the mapping: ended before the unmap
        unregister_mapping(guard_);
        if (base_ != nullptr) munmap(base_, size_);
        if (fd_ >= 0) close(fd_);
    }
    std::string describe() const override { return path_; }

    std::string changed() const override {
        if (mapping_faulted(guard_))
            return "the model file changed after it was loaded (it was truncated while mapped): " + path_;
        struct stat status {};
        if (fstat(fd_, &status) != 0) return "the model file can no longer be examined" + reason() + ": " + path_;
        if (static_cast<int64_t>(status.st_size) != identity_.size || status.st_mtim.tv_sec != identity_.mtime_s ||
            status.st_mtim.tv_nsec != identity_.mtime_ns)
            return "the model file changed after it was loaded (its size or modification time differs); replace_model, or free and load, reads it again: " + path_;
        return {};
    }

    void finish_read_ahead(bool stop) const override { read_ahead_->finish(stop); }
    uint64_t read_ahead_windows() const override { return read_ahead_->windows_read(); }
    void read_through(uint64_t end) const override { read_ahead_->read_through(end); }
    ReadAhead* read_ahead() const override { return read_ahead_.get(); }

private:
    std::string path_;
    int fd_;
    FileIdentity identity_;
    void* base_;  // nullptr for an empty file (mmap refuses length 0)
    GuardedRange* guard_ = nullptr;
    std::unique_ptr<ReadAhead> read_ahead_;
};

[[noreturn]] void unavailable(const std::string& path, const std::string& why) {
    throw Error(code::ModelUnavailable, why + ": " + path);
}

}  // namespace

bool FileIdentity::operator<(const FileIdentity& other) const {
    return std::tie(device, inode, mtime_s, mtime_ns, size) <
           std::tie(other.device, other.inode, other.mtime_s, other.mtime_ns, other.size);
}

OpenedFile::OpenedFile(const std::string& path) : path_(path) {
    if (path.empty()) throw Error(code::ModelUnavailable, "no model file: the path is empty");
    struct stat status {};
    if (stat(path.c_str(), &status) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) unavailable(path, "no model file at this path");
        unavailable(path, "cannot stat the model file" + reason());
    }
    if (S_ISDIR(status.st_mode)) unavailable(path, "the model path is a directory, not a GGUF file");
    if (!S_ISREG(status.st_mode)) unavailable(path, "the model path is not a regular file");
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) unavailable(path, "cannot open the model file for reading" + reason());
    if (fstat(fd_, &status) != 0) {
        const std::string why = "cannot stat the model file" + reason();
        close(fd_);
        unavailable(path, why);
    }
    identity_ = FileIdentity{static_cast<uint64_t>(status.st_dev), static_cast<uint64_t>(status.st_ino),
                             static_cast<int64_t>(status.st_mtim.tv_sec), static_cast<int64_t>(status.st_mtim.tv_nsec),
                             static_cast<int64_t>(status.st_size)};
}

OpenedFile::~OpenedFile() {
    if (fd_ >= 0) close(fd_);
}

std::shared_ptr<const ByteSource> OpenedFile::map() const {
    const auto size = static_cast<uint64_t>(identity_.size);
    void* base = nullptr;
    if (size > 0) {
        base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_, 0);
        if (base == MAP_FAILED) unavailable(path_, "cannot memory-map the model file" + reason());
    }
    const int kept = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    if (kept < 0) {
        const std::string why = "cannot keep the model file open" + reason();
        if (base != nullptr) munmap(base, size);
        unavailable(path_, why);
    }
    return std::make_shared<FileMapping>(path_, kept, identity_, base);
}

void ByteSource::check_intact() const {
    const std::string why = changed();
    if (!why.empty()) throw Error(code::ModelUnavailable, why);
}

}  // namespace ggufsm::gguf
