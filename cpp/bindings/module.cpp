#include "bindings.h"

namespace ggufsm {
const char* core_version();
}

PYBIND11_MODULE(_core, m) {
    m.doc() = "ggufsm C++ core: GGUF parse and validate, quantized kernels, forward passes";
    m.attr("__version__") = ggufsm::core_version();
    ggufsm::bind::errors(m);
    ggufsm::bind::gguf(m);
    ggufsm::bind::kernels(m);
    ggufsm::bind::forward(m);
}
