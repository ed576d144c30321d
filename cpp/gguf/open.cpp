// The one cache of open models, keyed by file identity (model.h).
#include <map>
#include <mutex>

#include "errors.h"
#include "gguf/model.h"

namespace ggufsm::gguf {

namespace {

std::mutex cache_mutex;
std::map<FileIdentity, std::weak_ptr<const Model>> cache;  // guarded by cache_mutex

std::shared_ptr<const Model> cached(const FileIdentity& identity) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto found = cache.find(identity);
    return found == cache.end() ? nullptr : found->second.lock();
}

}  // namespace

std::shared_ptr<const Model> load_model(std::shared_ptr<const ByteSource> bytes) {
    auto model = std::make_shared<Model>();
    try {
        model->file = parse(bytes);
        model->hp = validate_model(*model->file, &model->architecture);
    } catch (const Error&) {
        // A file truncated or rewritten while it was parsed reads as garbage (or as zero pages, fault_guard.h):
        // say what happened rather than what the garbage looked like.
        bytes->check_intact();
        throw;
    }
    bytes->check_intact();
    bytes->read_through(model->file->data_offset);  // the header: the read-ahead may go its distance past it
    return model;
}

std::shared_ptr<const Model> open_model(const std::string& path) {
    const OpenedFile opened(path);
    if (auto model = cached(opened.identity())) return model;
    // Parsed and validated outside the lock: a large file must not stall other opens.
    std::shared_ptr<const Model> model = load_model(opened.map());
    std::lock_guard<std::mutex> lock(cache_mutex);
    for (auto it = cache.begin(); it != cache.end();) it = it->second.expired() ? cache.erase(it) : std::next(it);
    std::weak_ptr<const Model>& slot = cache[opened.identity()];
    if (auto other = slot.lock()) return other;  // opened meanwhile by another thread: keep one
    slot = model;
    return model;
}

size_t open_model_count() {
    std::lock_guard<std::mutex> lock(cache_mutex);
    size_t alive = 0;
    for (const auto& entry : cache) alive += entry.second.expired() ? 0 : 1;
    return alive;
}

}  // namespace ggufsm::gguf
