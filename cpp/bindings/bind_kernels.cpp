#include "bindings.h"

namespace ggufsm::bind {
void kernels(pybind11::module_& m) { (void)m; }
}  // namespace ggufsm::bind
