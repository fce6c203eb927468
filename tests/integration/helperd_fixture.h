// Test support for helperd's integration tests: a real ondemand-helperd subprocess talking to
// the sandboxed systemd user manager (scripts/sandbox), units written into the sandbox's unit
// dir, and line clients on helperd's socket. All waiting is event-based: poll(2) with a deadline
// on a socket (helperd's replies, its sd_notify READY=1), never a fixed sleep.
#ifndef ONDEMAND_TESTS_HELPERD_FIXTURE_H
#define ONDEMAND_TESTS_HELPERD_FIXTURE_H

#include "ondemand_protocol.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ondemand::testing {

using namespace std::chrono_literals;

// A unix-socket connection that speaks helperd's line protocol.
class line_client {
  public:
    explicit line_client(const std::string& path);
    line_client(const line_client&) = delete;
    line_client& operator=(const line_client&) = delete;
    ~line_client();

    bool connected() const { return fd_ >= 0; }
    // Sends `line` plus '\n' (raw: use send_raw for bytes without the newline).
    void send(const std::string& line);
    void send_raw(const std::string& bytes);
    // The next line without its '\n'; nullopt at EOF or when the deadline passes.
    std::optional<std::string> read_line(std::chrono::milliseconds limit = 20s);
    // True when the peer closed the connection (EOF) within the limit.
    bool wait_closed(std::chrono::milliseconds limit = 10s);

  private:
    int fd_ = -1;
    std::array<char, proto::max_line_length + 1> buffer_{};
    proto::line_reader reader_{buffer_.data(), buffer_.size()};
    bool eof_ = false;
};

// Runs a program to completion; returns its exit status (-1 if it did not run or exit).
// `output` gets its stdout (and its stderr with `with_stderr`).
int run_program(const std::vector<std::string>& argv, std::string* output = nullptr,
                bool with_stderr = false);

class HelperdTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    // Writes an ondemand-it-<id>-<name>.service unit with these [Service] lines and reloads
    // the manager. Returns the unit name.
    std::string write_unit(const std::string& name, const std::vector<std::string>& service);
    // A unit running the test app on socket_path(name) with extra flags.
    std::string testapp_unit(const std::string& name, const std::string& flags,
                             const std::vector<std::string>& extra = {});
    std::string socket_path(const std::string& app) const;
    std::string start_line(const std::string& app, std::uint64_t gen, const std::string& unit,
                           const std::string& ready = "connect", unsigned timeout_ms = 20000);

    // helperd's app registry (--apps-dir): app files in apps_dir(), the apps' sockets in
    // app_socket_dir()/NAME/app.sock, units ondemand-exec@NAME.service.
    std::string apps_dir() const { return dir_ + "/apps"; }
    std::string app_socket_dir() const { return dir_ + "/run"; }
    // --apps-dir, --app-socket-dir, and --allow-unit ondemand-exec@*.service.
    std::vector<std::string> registry_flags() const;
    // A registered app: a name unique to this run ("r<pid>-<n>-<name>"), its unit
    // ondemand-exec@NAME.service (an instance unit file) running the test app with `flags` on
    // its registry socket, and (unless `file` is false) its app file, KIND=exec plus `extra`.
    std::string registry_app(const std::string& name, const std::string& flags,
                             const std::string& extra = "", bool file = true);
    void write_app_file(const std::string& app, const std::string& text);
    // START for a registered app, as the registry has it (connect, its socket).
    std::string registry_start(const std::string& app, std::uint64_t gen,
                               unsigned timeout_ms = 20000) const;

    // Starts helperd with these extra flags; waits for its READY=1 (sd_notify). Unless
    // `test_allowlist` is false, it may start the tests' units (--allow-unit ondemand-it-*).
    void start_helperd(const std::vector<std::string>& flags = {}, bool test_allowlist = true,
                       const std::vector<std::string>& extra_env = {});
    // Writes `key` (plus '\n') into a key file of mode 0600 in the test's directory and returns
    // its path, e.g. for start_helperd({"--key-file", path}).
    std::string write_key_file(const std::string& key, const std::string& name = "helperd.key");
    // Starts helperd with --key-file (a file holding `key`) and these flags.
    void start_helperd_with_key(const std::string& key, const std::vector<std::string>& flags = {});

    // Waits for an sd_notify datagram from helperd containing `needle` (all are kept in
    // notifications_).
    bool wait_notification(const std::string& needle, std::chrono::milliseconds limit = 10s);
    // SIGTERM; returns the exit status.
    int stop_helperd();
    // Waits (10 s at most) for helperd to exit; returns the exit status (-1: killed).
    int wait_helperd_exit();
    std::unique_ptr<line_client> connect();
    std::string helperd_log() const;
    int count_log(const std::string& needle) const;
    std::string active_state(const std::string& unit);

    // A program helperd runs under, with its arguments (absolute path first), e.g.
    // {"/usr/bin/prlimit", "--nofile=1024:1024", "--"}: it must exec helperd in its own pid.
    std::vector<std::string> helperd_wrapper_;
    std::string bin_dir_;
    std::string dir_;
    std::string helperd_socket_;
    std::string units_dir_;
    std::vector<std::string> units_;
    int helperd_pid_ = -1;
    int notify_fd_ = -1;
    std::vector<std::string> notifications_;
};

} // namespace ondemand::testing

#endif
