// One registration function per concern; module.cpp calls them in order.
// Each lives in its own file so the binding layer stays thin and separate
// from the core. errors, gguf and forward are the product (ggufsm._core);
// kernels is the test and benchmark face (ggufsm._core.kernels).
#pragma once
#include <pybind11/pybind11.h>

namespace ggufsm::bind {
void errors(pybind11::module_& m);
void gguf(pybind11::module_& m);
void forward(pybind11::module_& m);
void kernels(pybind11::module_& m);
void tokenizer(pybind11::module_& m);
}  // namespace ggufsm::bind
