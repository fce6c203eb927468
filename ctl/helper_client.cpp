#include "helper_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ondemand::ctl {

namespace {
[[noreturn]] void fail(const std::string& what, int err) {
    throw std::runtime_error(what + ": " + std::strerror(err));
}
} // namespace

key_file_result read_key_file(const std::string& path) {
    using status = key_file_result::status;
    key_file_result out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        out.state = err == ENOENT ? status::missing : status::unreadable;
        out.why = "cannot open " + path + ": " + std::strerror(err);
        return out;
    }
    char buf[proto::max_key_length + 2];
    std::size_t len = 0;
    while (len < sizeof(buf)) {
        ssize_t r = ::read(fd, buf + len, sizeof(buf) - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int err = errno;
            ::close(fd);
            out.state = status::unreadable;
            out.why = "cannot read " + path + ": " + std::strerror(err);
            return out;
        }
        if (r == 0) {
            break;
        }
        len += static_cast<std::size_t>(r);
    }
    ::close(fd);
    std::string_view key;
    if (const char* bad = proto::key_from_file(std::string_view(buf, len), key)) {
        out.state = status::invalid;
        out.why = "key file " + path + " " + bad;
        return out;
    }
    out.state = status::ok;
    out.key = std::string(key);
    return out;
}

std::string helper_client::authenticate(const std::string& key_file, bool required) {
    using status = key_file_result::status;
    key_file_ = key_file;
    key_file_result k = read_key_file(key_file);
    if (k.state == status::invalid || (required && k.state != status::ok)) {
        throw std::runtime_error(k.why);
    }
    if (k.state != status::ok) {
        key_problem_ = k.why;
        return k.why;
    }
    std::string instance = "ondemandctl-" + std::to_string(::getpid());
    proto::message hello;
    hello.kind = proto::verb::hello;
    hello.instance = instance;
    hello.key = k.key;
    send(hello);
    return {};
}

std::string helper_client::explain_error(std::string_view text) const {
    std::string out = "helperd: " + std::string(text);
    if (text == "authentication required") {
        out += key_problem_.empty()
                   ? " (no key file given)"
                   : "; ondemandctl cannot use the key: " + key_problem_ +
                         " (run it as root, or give a readable key file with --key-file)";
    } else if (text == "wrong key") {
        out += " (" + key_file_ +
               " is not the key helperd has: was it changed without restarting helperd?)";
    }
    return out;
}

helper_client::helper_client(const std::string& socket_path) : path_(socket_path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof(addr.sun_path)) {
        throw std::runtime_error("helperd socket path too long: " + socket_path);
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        fail("socket", errno);
    }
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        fail("cannot connect to helperd at " + socket_path, err);
    }
}

helper_client::~helper_client() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void helper_client::send(const proto::message& m) {
    char line[proto::max_line_length + 1];
    std::size_t n = proto::format(m, line, sizeof(line));
    if (n == 0) {
        throw std::runtime_error("cannot encode the request (a field is invalid)");
    }
    std::size_t off = 0;
    while (off < n) {
        ssize_t w = ::send(fd_, line + off, n - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("write to helperd", errno);
        }
        off += static_cast<std::size_t>(w);
    }
}

std::optional<std::string> helper_client::read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::string_view line;
        proto::line_reader::status st = reader_.next(line);
        if (st == proto::line_reader::status::line) {
            return std::string(line);
        }
        if (st == proto::line_reader::status::too_long) {
            throw std::runtime_error("helperd sent a line longer than the protocol allows");
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("poll", errno);
        }
        if (r == 0) {
            return std::nullopt;
        }
        ssize_t n = ::read(fd_, reader_.space(), reader_.room());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("read from helperd", errno);
        }
        if (n == 0) {
            throw std::runtime_error("helperd closed the connection");
        }
        reader_.commit(static_cast<std::size_t>(n));
    }
}

} // namespace ondemand::ctl
