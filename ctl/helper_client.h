// A blocking client of helperd's protocol for ondemandctl: one connection, one line out, lines in.
#ifndef ONDEMAND_CTL_HELPER_CLIENT_H
#define ONDEMAND_CTL_HELPER_CLIENT_H

#include "ondemand_protocol.h"

#include <array>
#include <chrono>
#include <optional>
#include <string>

namespace ondemand::ctl {

class helper_client {
  public:
    // Connects to helperd's unix socket; throws std::runtime_error with a clear message.
    explicit helper_client(const std::string& socket_path);
    ~helper_client();
    helper_client(const helper_client&) = delete;
    helper_client& operator=(const helper_client&) = delete;

    void send(const proto::message& m);
    // The next line (without '\n'), or nullopt when `timeout` passes; throws on EOF or errors.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  private:
    int fd_ = -1;
    std::string path_;
    std::array<char, proto::max_line_length + 1> buf_{};
    proto::line_reader reader_{buf_.data(), buf_.size()};
};

} // namespace ondemand::ctl

#endif
