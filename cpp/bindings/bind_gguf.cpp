#include "bindings.h"

namespace ggufsm::bind {
void gguf(pybind11::module_& m) { (void)m; }
}  // namespace ggufsm::bind
