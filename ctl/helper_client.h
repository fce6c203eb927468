// A blocking client of helperd's protocol for ondemandctl: one connection, one line out, lines in.
#ifndef ONDEMAND_CTL_HELPER_CLIENT_H
#define ONDEMAND_CTL_HELPER_CLIENT_H

#include "ondemand_protocol.h"

#include <array>
#include <chrono>
#include <optional>
#include <string>

namespace ondemand::ctl {

// A key file read by ondemandctl (proto::key_from_file).
struct key_file_result {
    enum class status { ok, missing, unreadable, invalid } state = status::missing;
    std::string key; // status::ok
    std::string why; // otherwise: "cannot open /x: Permission denied", "key file /x is empty"
};
key_file_result read_key_file(const std::string& path);

class helper_client {
  public:
    // Connects to helperd's unix socket; throws std::runtime_error with a clear message.
    explicit helper_client(const std::string& socket_path);
    ~helper_client();
    helper_client(const helper_client&) = delete;
    helper_client& operator=(const helper_client&) = delete;

    // Authenticates with the key of `key_file` (HELLO ondemandctl-PID key=KEY) when ondemandctl
    // can read it. Returns "" when the HELLO was sent (or no key file exists and `required` is
    // false), else why not ("cannot open /etc/ondemand/helperd.key: Permission denied"), kept
    // for the message when helperd answers `ERROR authentication required`. Throws when the file
    // is there, readable and not a valid key, or when `required` and it cannot be read.
    std::string authenticate(const std::string& key_file, bool required);

    // The message for an `ERROR text` from helperd, explained when it is about the key.
    std::string explain_error(std::string_view text) const;

    void send(const proto::message& m);
    // The next line (without '\n'), or nullopt when `timeout` passes; throws on EOF or errors.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  private:
    int fd_ = -1;
    std::string path_;
    std::string key_file_;
    std::string key_problem_; // why no HELLO was sent (authenticate)
    std::array<char, proto::max_line_length + 1> buf_{};
    proto::line_reader reader_{buf_.data(), buf_.size()};
};

} // namespace ondemand::ctl

#endif
