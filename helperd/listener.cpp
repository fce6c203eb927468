// listener: helperd's listening socket, passed by systemd or bound here (see listener.h).
// Must not include any other helperd header.
#include "listener.h"

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace ondemand::helperd {

namespace {

std::runtime_error os_error(std::string_view what, int err) {
    return std::runtime_error(fmt::format("{}: {}", what, std::strerror(err)));
}

class fd_guard {
  public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

  private:
    int fd_;
};

sockaddr_un make_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        throw std::runtime_error(fmt::format("socket path too long or empty: {}", path));
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

// True when something still accepts connections on the socket at `path`.
bool socket_in_use(const sockaddr_un& addr) {
    fd_guard probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.get() < 0) {
        return false;
    }
    return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

} // namespace

listen_socket open_listen_socket(const std::string& path, mode_t mode) {
    int n = sd_listen_fds(1);
    if (n < 0) {
        throw os_error("sd_listen_fds", -n);
    }
    if (n > 0) {
        int fd = SD_LISTEN_FDS_START;
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0) {
            throw std::runtime_error("the socket passed by systemd is not a listening unix "
                                     "stream socket");
        }
        return {fd, true};
    }
    if (path.empty()) {
        throw std::runtime_error("no --socket given and no socket passed by systemd");
    }
    sockaddr_un addr = make_address(path);
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw std::runtime_error(fmt::format("{} exists and is not a socket", path));
        }
        if (socket_in_use(addr)) {
            throw std::runtime_error(fmt::format("{} is in use by another process", path));
        }
        if (::unlink(path.c_str()) != 0) {
            throw os_error(fmt::format("removing stale socket {}", path), errno);
        }
    }
    fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) {
        throw os_error("socket", errno);
    }
    // The file gets its mode from bind itself, never by path afterwards (a chmod by path
    // follows a symlink swapped in meanwhile when the directory is writable by others): Linux
    // creates the socket file with the socket inode's mode (fchmod) less the umask.
    if (::fchmod(fd.get(), mode & 07777) != 0) {
        throw os_error("fchmod socket", errno);
    }
    mode_t old_umask = ::umask(~mode & 0777);
    int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    int bind_errno = errno;
    ::umask(old_umask);
    if (bound != 0) {
        throw os_error(fmt::format("bind {}", path), bind_errno);
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
        int err = errno;
        ::unlink(path.c_str());
        throw os_error(fmt::format("listen {}", path), err);
    }
    return {fd.release(), false};
}

} // namespace ondemand::helperd
