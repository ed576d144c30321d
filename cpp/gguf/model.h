// A model: a GGUF file parsed (gguf.h) and accepted by its architecture's
// declaration (architecture.h), the form the forward is built from; and the
// one cache that shares a model between opens of the same file.
#pragma once
#include <memory>
#include <string>

#include "gguf/architecture.h"
#include "gguf/gguf.h"

namespace ggufsm::gguf {

struct Model {
    std::shared_ptr<const File> file;    // keeps the bytes alive
    const Architecture* architecture;    // its declaration
    HyperParameters hp;
};

// Maps, parses and validates the file at `path`. While a Model of the same
// file (same FileIdentity) is alive, returns that Model: handles on one file
// share its pages, its parse and, through the Python object bound to it, its
// metadata and tokenizer. The cache holds no Model alive by itself.
std::shared_ptr<const Model> open_model(const std::string& path);

// Parses and validates bytes the caller owns (never cached: their identity is their buffer).
std::shared_ptr<const Model> load_model(std::shared_ptr<const ByteSource> bytes);

// Models held in the cache and still alive (diagnostics, tests).
size_t open_model_count();

}  // namespace ggufsm::gguf
