// How much of an anonymous mapping the kernel backs with 2 MiB pages: what a
// MADV_HUGEPAGE advice got (transparent huge pages may be refused or partial),
// for the weights' copy and the benches' read probe to report.
#pragma once

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

}  // namespace ggufsm
