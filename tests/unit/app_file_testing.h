// Helpers shared by the app-file unit tests.
#pragma once

#include "app_file.h"

#include <string>

namespace ondemand::ctl::test_support {

// A parse's errors and warnings, one per line, as `check` prints them: for failure messages.
inline std::string errors_of(const parse_result& r) {
    std::string out;
    for (const auto& e : r.errors) {
        out += e.to_string() + "\n";
    }
    return out;
}

} // namespace ondemand::ctl::test_support
