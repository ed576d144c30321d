#include "bindings.h"

namespace py = pybind11;

namespace {
// The core's own version; tests/test_package.py checks the wheel's agrees.
constexpr const char* kCoreVersion = "0.1.0";
}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "ggufsm C++ core: GGUF parse and validate, the architectures, the fused forward";
    m.attr("__version__") = kCoreVersion;
    ggufsm::bind::errors(m);
    ggufsm::bind::gguf(m);
    ggufsm::bind::forward(m);
    ggufsm::bind::tokenizer(m);

    py::module_ kernels = m.def_submodule(
        "kernels", "the kernels one by one, ISA forcing, thread pools and measurements: for tests and benchmarks");
    ggufsm::bind::kernels(kernels);
    // Importable by name too (`import ggufsm._core.kernels`), as a package's submodule is.
    py::module_::import("sys").attr("modules")["ggufsm._core.kernels"] = kernels;
}
