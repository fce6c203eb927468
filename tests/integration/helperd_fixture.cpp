#include "helperd_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace ondemand::testing {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

namespace {

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
    return addr;
}

int remaining_ms(clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

std::vector<char*> c_argv(std::vector<std::string>& args) {
    std::vector<char*> out;
    out.reserve(args.size() + 1);
    for (std::string& a : args) {
        out.push_back(a.data());
    }
    out.push_back(nullptr);
    return out;
}

std::atomic<int> unit_counter{0};

} // namespace

// ---- line_client ------------------------------------------------------------------------------

line_client::line_client(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = unix_address(path);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
        fd_ = fd;
    } else if (fd >= 0) {
        ::close(fd);
    }
}

line_client::~line_client() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void line_client::send(const std::string& line) {
    send_raw(line + "\n");
}

void line_client::send_raw(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        ASSERT_GT(n, 0) << "send: " << std::strerror(errno);
        done += static_cast<std::size_t>(n);
    }
}

std::optional<std::string> line_client::read_line(std::chrono::milliseconds limit) {
    auto deadline = clock::now() + limit;
    for (;;) {
        std::string_view line;
        proto::line_reader::status st = reader_.next(line);
        if (st == proto::line_reader::status::line) {
            return std::string(line);
        }
        if (st == proto::line_reader::status::too_long) {
            ADD_FAILURE() << "helperd sent a line longer than the protocol allows";
            return std::nullopt;
        }
        if (eof_ || fd_ < 0) {
            return std::nullopt;
        }
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return std::nullopt;
        }
        ssize_t n = ::recv(fd_, reader_.space(), reader_.room(), 0);
        if (n <= 0) {
            eof_ = true;
            continue;
        }
        reader_.commit(static_cast<std::size_t>(n));
    }
}

bool line_client::wait_closed(std::chrono::milliseconds limit) {
    auto deadline = clock::now() + limit;
    while (!eof_) {
        if (auto line = read_line(std::chrono::milliseconds(remaining_ms(deadline)))) {
            continue; // lines before the close are fine
        }
        return eof_;
    }
    return true;
}

// ---- processes --------------------------------------------------------------------------------

int run_program(const std::vector<std::string>& argv, std::string* output, bool with_stderr) {
    std::vector<std::string> args = argv;
    std::vector<char*> cargs = c_argv(args);
    int pipefd[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (output != nullptr) {
        if (::pipe2(pipefd, O_CLOEXEC) != 0) {
            return -1;
        }
        posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
        if (with_stderr) {
            posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDERR_FILENO);
        }
    }
    pid_t pid = -1;
    int r = posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (output != nullptr) {
        ::close(pipefd[1]);
        char chunk[4096];
        ssize_t n = 0;
        while ((n = ::read(pipefd[0], chunk, sizeof(chunk))) > 0) {
            output->append(chunk, static_cast<std::size_t>(n));
        }
        ::close(pipefd[0]);
    }
    if (r != 0) {
        return -1;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- HelperdTest ------------------------------------------------------------------------------

void HelperdTest::SetUp() {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    const char* bus = std::getenv("DBUS_SESSION_BUS_ADDRESS");
    const char* units = std::getenv("ONDEMAND_SANDBOX_UNITS");
    if (runtime == nullptr || bus == nullptr || units == nullptr) {
        GTEST_SKIP() << "needs the sandboxed systemd user manager: run "
                        "`scripts/sandbox up` and `eval \"$(scripts/sandbox env)\"` first "
                        "(XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS, ONDEMAND_SANDBOX_UNITS)";
    }
    units_dir_ = units;
    bin_dir_ = fs::read_symlink("/proc/self/exe").parent_path().string();
    ASSERT_TRUE(fs::exists(bin_dir_ + "/ondemand-helperd")) << bin_dir_;
    ASSERT_TRUE(fs::exists(bin_dir_ + "/ondemand-testapp")) << bin_dir_;
    // Short: every socket path must fit in sockaddr_un.
    std::string tmpl = "/tmp/odh-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    helperd_socket_ = dir_ + "/helperd.sock";
}

void HelperdTest::TearDown() {
    if (helperd_pid_ > 0) {
        stop_helperd();
    }
    if (!units_.empty()) {
        for (const std::string& unit : units_) {
            run_program({"systemctl", "--user", "stop", unit});
            run_program({"systemctl", "--user", "reset-failed", unit});
            fs::remove(units_dir_ + "/" + unit);
        }
        run_program({"systemctl", "--user", "daemon-reload"});
    }
    if (notify_fd_ >= 0) {
        ::close(notify_fd_);
    }
    if (!dir_.empty()) {
        if (HasFailure()) {
            std::cerr << "helperd log:\n" << helperd_log() << "\n";
        }
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
}

namespace {

void write_unit_file(const std::string& path, const std::string& name,
                     const std::vector<std::string>& service) {
    std::ofstream out(path);
    out << "[Unit]\nDescription=helperd integration test " << name << "\n[Service]\n";
    for (const std::string& line : service) {
        out << line << "\n";
    }
}

} // namespace

std::vector<std::string> HelperdTest::registry_flags() const {
    return {"--apps-dir",     apps_dir(),     "--app-socket-dir",
            app_socket_dir(), "--allow-unit", "ondemand-exec@*.service"};
}

void HelperdTest::write_app_file(const std::string& app, const std::string& text) {
    fs::create_directories(apps_dir());
    std::ofstream(apps_dir() + "/" + app + ".conf") << text;
}

std::string HelperdTest::registry_app(const std::string& name, const std::string& flags,
                                      const std::string& extra, bool file) {
    std::string app =
        "r" + std::to_string(::getpid()) + "-" + std::to_string(++unit_counter) + "-" + name;
    std::string sock_dir = app_socket_dir() + "/" + app;
    std::string unit = "ondemand-exec@" + app + ".service";
    write_unit_file(units_dir_ + "/" + unit, app,
                    {"ExecStartPre=/bin/mkdir -p " + sock_dir,
                     "ExecStart=" + bin_dir_ + "/ondemand-testapp --socket " + sock_dir +
                         "/app.sock --name " + app + (flags.empty() ? "" : " " + flags)});
    units_.push_back(unit);
    EXPECT_EQ(run_program({"systemctl", "--user", "daemon-reload"}), 0);
    fs::create_directories(apps_dir());
    if (file) {
        write_app_file(app, "KIND=exec\nEXEC=/bin/true\n" + extra);
    }
    return app;
}

std::string HelperdTest::registry_start(const std::string& app, std::uint64_t gen,
                                        unsigned timeout_ms) const {
    return "START " + app + " " + std::to_string(gen) + " ondemand-exec@" + app +
           ".service connect " + std::to_string(timeout_ms) + " " + app_socket_dir() + "/" + app +
           "/app.sock";
}

std::string HelperdTest::write_unit(const std::string& name,
                                    const std::vector<std::string>& service) {
    std::string unit = "ondemand-it-" + std::to_string(::getpid()) + "-" +
                       std::to_string(++unit_counter) + "-" + name + ".service";
    std::ofstream out(units_dir_ + "/" + unit);
    out << "[Unit]\nDescription=helperd integration test " << name << "\n[Service]\n";
    for (const std::string& line : service) {
        out << line << "\n";
    }
    out.close();
    units_.push_back(unit);
    EXPECT_EQ(run_program({"systemctl", "--user", "daemon-reload"}), 0);
    return unit;
}

std::string HelperdTest::socket_path(const std::string& app) const {
    return dir_ + "/" + app + ".sock";
}

std::string HelperdTest::testapp_unit(const std::string& name, const std::string& flags,
                                      const std::vector<std::string>& extra) {
    std::vector<std::string> lines = {"ExecStart=" + bin_dir_ + "/ondemand-testapp --socket " +
                                      socket_path(name) + " --name " + name +
                                      (flags.empty() ? "" : " " + flags)};
    lines.insert(lines.end(), extra.begin(), extra.end());
    return write_unit(name, lines);
}

std::string HelperdTest::start_line(const std::string& app, std::uint64_t gen,
                                    const std::string& unit, const std::string& ready,
                                    unsigned timeout_ms) {
    return "START " + app + " " + std::to_string(gen) + " " + unit + " " + ready + " " +
           std::to_string(timeout_ms) + " " + socket_path(app);
}

void HelperdTest::start_helperd(const std::vector<std::string>& flags, bool test_allowlist,
                                const std::vector<std::string>& extra_env) {
    // helperd says READY=1 on this datagram socket once it listens (as under Type=notify).
    std::string notify_path = dir_ + "/notify.sock";
    notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(notify_fd_, 0);
    sockaddr_un addr = unix_address(notify_path);
    ASSERT_EQ(::bind(notify_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);

    std::vector<std::string> args = {bin_dir_ + "/ondemand-helperd", "--socket", helperd_socket_,
                                     "--user"};
    if (test_allowlist) {
        args.insert(args.end(), {"--allow-unit", "ondemand-it-*.service"});
    }
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.begin(), helperd_wrapper_.begin(), helperd_wrapper_.end());
    std::vector<char*> cargs = c_argv(args);

    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string_view v(*e);
        if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("LISTEN_FDS=") ||
            v.starts_with("LISTEN_PID=") || v.starts_with("JOURNAL_STREAM=") ||
            v.starts_with("WATCHDOG_")) {
            continue;
        }
        env_strings.emplace_back(v);
    }
    env_strings.push_back("NOTIFY_SOCKET=" + notify_path);
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> cenv = c_argv(env_strings);

    std::string log_path = dir_ + "/helperd.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    int r = posix_spawn(&pid, cargs[0], &actions, nullptr, cargs.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(r, 0) << std::strerror(r);
    helperd_pid_ = pid;

    ASSERT_TRUE(wait_notification("READY=1", 10s))
        << "helperd did not notify READY=1 within 10 s; log:\n"
        << helperd_log();
}

bool HelperdTest::wait_notification(const std::string& needle, std::chrono::milliseconds limit) {
    auto deadline = clock::now() + limit;
    for (;;) {
        pollfd p{notify_fd_, POLLIN, 0};
        int n = ::poll(&p, 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        char buf[4096];
        ssize_t len = ::recv(notify_fd_, buf, sizeof(buf), 0);
        if (len <= 0) {
            continue;
        }
        std::string message(buf, static_cast<std::size_t>(len));
        notifications_.push_back(message);
        if (message.find(needle) != std::string::npos) {
            return true;
        }
    }
}

int HelperdTest::stop_helperd() {
    if (helperd_pid_ <= 0) {
        return -1;
    }
    ::kill(helperd_pid_, SIGTERM);
    return wait_helperd_exit();
}

int HelperdTest::wait_helperd_exit() {
    if (helperd_pid_ <= 0) {
        return -1;
    }
    // The child's exit, event-based: a pidfd becomes readable when the process exits.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, helperd_pid_, 0));
    if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) {
            ADD_FAILURE() << "helperd did not exit within 10 s";
            ::kill(helperd_pid_, SIGKILL);
        }
        ::close(pidfd);
    }
    int status = 0;
    while (::waitpid(helperd_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    helperd_pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::unique_ptr<line_client> HelperdTest::connect() {
    auto client = std::make_unique<line_client>(helperd_socket_);
    EXPECT_TRUE(client->connected());
    return client;
}

std::string HelperdTest::write_key_file(const std::string& key, const std::string& name) {
    std::string path = dir_ + "/" + name;
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << key << "\n";
    }
    ::chmod(tmp.c_str(), 0600);
    fs::rename(tmp, path);
    return path;
}

void HelperdTest::start_helperd_with_key(const std::string& key,
                                         const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--key-file", write_key_file(key)};
    all.insert(all.end(), flags.begin(), flags.end());
    start_helperd(all);
}

std::string HelperdTest::helperd_log() const {
    std::ifstream in(dir_ + "/helperd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int HelperdTest::count_log(const std::string& needle) const {
    std::string log = helperd_log();
    int count = 0;
    for (std::size_t pos = log.find(needle); pos != std::string::npos;
         pos = log.find(needle, pos + needle.size())) {
        ++count;
    }
    return count;
}

std::string HelperdTest::active_state(const std::string& unit) {
    std::string out;
    run_program({"systemctl", "--user", "show", "--property=ActiveState", "--value", unit}, &out);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    return out;
}

} // namespace ondemand::testing
