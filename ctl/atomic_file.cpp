#include "atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace ondemand::ctl {

void write_file_atomically(const std::filesystem::path& file, const std::string& text,
                           std::filesystem::perms mode) {
    std::string tmp = file.string() + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) {
            std::remove(tmp.c_str());
            throw std::runtime_error("cannot write " + tmp);
        }
    }
    std::error_code ec;
    std::filesystem::permissions(tmp, mode, ec);
    std::filesystem::rename(tmp, file, ec);
    if (ec) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp + " to " + file.string() + ": " +
                                 ec.message());
    }
}

} // namespace ondemand::ctl
