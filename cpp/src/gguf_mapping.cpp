// Read-only memory maps of model files, shared between opens of one file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "ggufsm/errors.h"
#include "ggufsm/gguf.h"

namespace ggufsm::gguf {

namespace {

class FileMapping final : public ByteSource {
public:
    FileMapping(std::string path, void* base, uint64_t size) : path_(std::move(path)), base_(base) {
        data_ = static_cast<const uint8_t*>(base);
        size_ = size;
    }
    ~FileMapping() override {
        if (base_ != nullptr) munmap(base_, size_);
    }
    std::string describe() const override { return path_; }

private:
    std::string path_;
    void* base_;  // nullptr for an empty file (mmap refuses length 0)
};

// A file is "the same file" while its identity and contents stamp are
// unchanged; a rewritten file gets a new mapping.
using FileKey = std::tuple<dev_t, ino_t, int64_t /* mtime s */, int64_t /* mtime ns */, int64_t /* size */>;

std::mutex cache_mutex;
std::map<FileKey, std::weak_ptr<const ByteSource>> cache;  // guarded by cache_mutex

[[noreturn]] void unavailable(const std::string& path, const std::string& why) {
    throw Error(code::ModelUnavailable, why + ": " + path);
}

class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

std::shared_ptr<const ByteSource> map_file(const std::string& path) {
    if (path.empty()) throw Error(code::ModelUnavailable, "no model file: the path is empty");
    struct stat status {};
    if (stat(path.c_str(), &status) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) unavailable(path, "no model file at this path");
        unavailable(path, std::string("cannot stat the model file (") + std::strerror(errno) + ")");
    }
    if (S_ISDIR(status.st_mode)) unavailable(path, "the model path is a directory, not a GGUF file");
    if (!S_ISREG(status.st_mode)) unavailable(path, "the model path is not a regular file");

    FileDescriptor fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) unavailable(path, std::string("cannot open the model file for reading (") + std::strerror(errno) + ")");
    // Identity from the descriptor we map, so a file replaced between stat and
    // open is not mistaken for the cached one.
    if (fstat(fd.get(), &status) != 0)
        unavailable(path, std::string("cannot stat the model file (") + std::strerror(errno) + ")");
    const FileKey key{status.st_dev, status.st_ino, status.st_mtim.tv_sec, status.st_mtim.tv_nsec, status.st_size};
    const auto size = static_cast<uint64_t>(status.st_size);

    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto found = cache.find(key); found != cache.end()) {
        if (auto shared = found->second.lock()) return shared;
    }
    void* base = nullptr;
    if (size > 0) {
        base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (base == MAP_FAILED)
            unavailable(path, std::string("cannot memory-map the model file (") + std::strerror(errno) + ")");
    }
    std::shared_ptr<const ByteSource> mapping = std::make_shared<FileMapping>(path, base, size);
    for (auto it = cache.begin(); it != cache.end();) it = it->second.expired() ? cache.erase(it) : std::next(it);
    cache[key] = mapping;
    return mapping;
}

}  // namespace ggufsm::gguf
