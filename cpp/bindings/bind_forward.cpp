#include "bindings.h"

namespace ggufsm::bind {
void forward(pybind11::module_& m) { (void)m; }
}  // namespace ggufsm::bind
