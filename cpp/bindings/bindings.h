// One registration function per concern; module.cpp calls them in order.
// Each lives in its own bind_*.cpp so the binding layer stays thin and
// separate from the kernels in src/.
#pragma once
#include <pybind11/pybind11.h>

namespace ggufsm::bind {
void errors(pybind11::module_& m);
void gguf(pybind11::module_& m);
void kernels(pybind11::module_& m);
void forward(pybind11::module_& m);
}  // namespace ggufsm::bind
