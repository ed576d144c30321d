// A model file changed under a loaded model must not kill the process.
//
// The weights are a read-only MAP_PRIVATE mapping of the file. When the file
// is truncated (or rewritten in place, as `cp` does: truncate, then write),
// touching a page past its new end raises SIGBUS, whose default action kills
// the process, on whichever thread touched it: the caller or a pool worker.
//
// The guard does not unwind anything. Its SIGBUS handler looks the faulting
// address up among the registered mappings; if it is in one, it maps
// anonymous zero pages over that mapping from the faulting page to its end
// (MAP_FIXED) and marks the mapping faulted, and the faulting instruction
// runs again and reads zeros. No thread leaves the code it was in, so no lock
// is left held, no pool worker is lost and no stack is skipped: the forward
// finishes on garbage, and the session, which checks the mapping after each
// forward (ByteSource::check_intact), throws ModelUnavailable instead of
// handing those logits to the sampler. A fault elsewhere goes to the handler
// that was installed before (Python's faulthandler, or the default action).
//
// Why not sigsetjmp/siglongjmp around the forward: the fault can happen on a
// pool worker in the middle of a parallel_for while the caller waits and
// other workers hold the claim word, so a jump would have to unwind several
// threads at once, with the pool's mutexes possibly held. Replacing the page
// needs none of that.
#pragma once
#include <cstdint>

namespace ggufsm::gguf {

// One registered mapping [begin, end). `faulted` is set by the handler.
struct GuardedRange;

// Registers a mapping (installing the handler first if another took SIGBUS
// since); the returned slot lives until unregister_mapping.
GuardedRange* register_mapping(const void* begin, uint64_t size);
void unregister_mapping(GuardedRange* range);
// True once a fault inside the range was turned into zero pages.
bool mapping_faulted(const GuardedRange* range);

}  // namespace ggufsm::gguf
