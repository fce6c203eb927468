// Files that readers (nginx, systemd) must never see half-written: written beside the target,
// then renamed over it.
#pragma once

#include <filesystem>
#include <string>

namespace ondemand::ctl {

// Writes `text` to FILE.tmp.PID with `mode`, then renames it to `file`; throws naming the file
// on failure (and removes the temporary file).
void write_file_atomically(const std::filesystem::path& file, const std::string& text,
                           std::filesystem::perms mode = std::filesystem::perms(0644));

} // namespace ondemand::ctl
