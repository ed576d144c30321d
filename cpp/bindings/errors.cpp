#include "bindings.h"

#include "errors.h"

namespace py = pybind11;

namespace ggufsm::bind {

// The Python classes are made from the table at import time, so they are
// looked up by code name when an error crosses the boundary rather than
// declared here a second time.
void errors(py::module_& m) {
    (void)m;
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const ggufsm::Error& e) {
            py::object errors_module = py::module_::import("ggufsm.spec.errors");
            py::object cls = errors_module.attr("error_class")(e.code());
            py::object instance = cls(e.what());
            PyErr_SetObject(cls.ptr(), instance.ptr());
        }
    });
}

}  // namespace ggufsm::bind
