// How much of an anonymous mapping the kernel backs with 2 MiB pages: what a
// MADV_HUGEPAGE advice got (transparent huge pages may be refused or partial),
// for the weights' copy and the benches' read probe to report.
#pragma once

#include <sys/mman.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace ggufsm {

// Bytes of the anonymous mapping that starts at `start` in 2 MiB pages: the
// AnonHugePages line of its entry in /proc/self/smaps, 0 when there is none.
inline size_t anon_huge_page_bytes(const void* start) {
    std::ifstream smaps("/proc/self/smaps");
    std::ostringstream prefix;
    prefix << std::hex << reinterpret_cast<uintptr_t>(start) << "-";
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        // A mapping's first line starts "start-end perms ..."; its fields follow on lines of their own.
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
            line.find(' ') > line.find('-')) {
            inside = line.rfind(prefix.str(), 0) == 0;
        } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
            return size_t(std::stoull(line.substr(14))) * 1024;
        }
    }
    return 0;
}

constexpr size_t kHugePageBytes = size_t(2) << 20;

// `bytes` (a multiple of the page size) of anonymous memory starting on a 2 MiB boundary,
// advised MADV_HUGEPAGE (huge) or MADV_NOHUGEPAGE (a mapping to fill on 4 KiB pages and collapse
// later: runtime/huge_page_collapse.h), or nullptr. THP backs only aligned 2 MiB ranges: an unaligned mapping keeps its
// first and last partial 2 MiB on 4 KiB pages (the repacked SmolLM2 matrices, 63 MiB, got 60 or
// 62 MiB of huge pages by where ASLR put them, and 500 more page faults in the first case).
inline uint8_t* map_huge_page_aligned(size_t bytes, bool huge = true) {
    // Over-allocate by one huge page and trim both ends to the boundary.
    void* raw = mmap(nullptr, bytes + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    uint8_t* base = static_cast<uint8_t*>(raw);
    const size_t lead = (kHugePageBytes - reinterpret_cast<uintptr_t>(base) % kHugePageBytes) % kHugePageBytes;
    if (lead) munmap(base, lead);
    if (kHugePageBytes - lead) munmap(base + lead + bytes, kHugePageBytes - lead);
    madvise(base + lead, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // advice only: a kernel without THP keeps 4 KiB pages
    return base + lead;
}

}  // namespace ggufsm
