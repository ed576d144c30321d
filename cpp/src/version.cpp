// The core's own version, reported by ggufsm._core.__version__ through the
// binding layer; kept in one place so the wheel and the library agree.
namespace ggufsm {
const char* core_version() { return "0.1.0"; }
}  // namespace ggufsm
