// Errors raised by the C++ core. Each carries one of the spec's error codes
// (spec/lifecycle.yaml, section `errors`) by name; the binding layer turns it
// into the Python exception class of the same name (ggufsm.spec.errors).
#pragma once
#include <stdexcept>
#include <string>

namespace ggufsm {

class Error : public std::runtime_error {
public:
    Error(std::string code, const std::string& message)
        : std::runtime_error(message), code_(std::move(code)) {}
    const std::string& code() const noexcept { return code_; }

private:
    std::string code_;
};

// The codes the core can raise; spelled exactly as in the table.
namespace code {
inline const char* const InvalidModel = "InvalidModel";
inline const char* const UnsupportedModel = "UnsupportedModel";
inline const char* const ModelUnavailable = "ModelUnavailable";
inline const char* const InvalidInput = "InvalidInput";
inline const char* const ContextOverflow = "ContextOverflow";
inline const char* const Cancelled = "Cancelled";
}  // namespace code

}  // namespace ggufsm
