// Environment files as systemd reads them (EnvironmentFile=, parse_env_file_internal()):
// quotes, escapes, continuations and comments, so that an app file means to ondemandctl what it
// means to its unit.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ondemand::ctl {

// One KEY=VALUE of an environment file, as systemd's parse_env_file_internal() reads it.
struct env_entry {
    std::string key;
    std::string value;
    unsigned line = 0;
    bool has_equals = true;
    bool unterminated = false;
};

// The entries of `text` in order, each with the line it starts on.
std::vector<env_entry> read_env_file(std::string_view text);

// UTF-8 as systemd's utf8_is_valid() takes it: no overlong forms, no surrogates, at most
// U+10FFFF.
bool valid_utf8(std::string_view s);

} // namespace ondemand::ctl
