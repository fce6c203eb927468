// readiness_probe: inotify, connect and HTTP checks of one start attempt (see readiness.h).
// Must not include app_core.h, app_driver.h, systemd.h or server.h.
#include "readiness.h"

#include "log.h"

#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ondemand::helperd {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds connect_backoff_cap = 32ms;
constexpr std::chrono::milliseconds http_backoff_cap = 250ms;
constexpr std::chrono::milliseconds http_answer_limit = 2000ms;
constexpr std::size_t http_status_line_limit = 4096;

std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) {
        return "/";
    }
    return path.substr(0, slash);
}

// The deepest directory of `dir` and its ancestors that exists.
std::string nearest_existing_dir(std::string dir) {
    for (;;) {
        struct stat st {};
        if (stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            return dir;
        }
        if (dir == "/") {
            return dir;
        }
        dir = parent_dir(dir);
    }
}

// "HTTP/1.1 204 No Content" -> 204; 0 if the line is not a status line.
int parse_status(const std::string& line) {
    if (line.rfind("HTTP/", 0) != 0) {
        return 0;
    }
    auto sp = line.find(' ');
    if (sp == std::string::npos || line.size() < sp + 4) {
        return 0;
    }
    int status = 0;
    for (std::size_t i = sp + 1; i < sp + 4; ++i) {
        if (line[i] < '0' || line[i] > '9') {
            return 0;
        }
        status = status * 10 + (line[i] - '0');
    }
    return status;
}

} // namespace

std::shared_ptr<readiness_probe> readiness_probe::create(asio::io_context& io,
                                                         std::shared_ptr<inotify_hub> inotify,
                                                         std::string socket_path,
                                                         std::string http_path,
                                                         std::function<void()> on_ready) {
    return std::make_shared<readiness_probe>(private_tag{}, io, std::move(inotify),
                                             std::move(socket_path), std::move(http_path),
                                             std::move(on_ready));
}

readiness_probe::readiness_probe(private_tag, asio::io_context& io,
                                 std::shared_ptr<inotify_hub> inotify, std::string socket_path,
                                 std::string http_path, std::function<void()> on_ready)
    : io_(io), socket_path_(std::move(socket_path)), http_path_(std::move(http_path)),
      on_ready_(std::move(on_ready)), inotify_(std::move(inotify)), retry_timer_(io) {}

void readiness_probe::start() {
    watch();
    attempt();
}

void readiness_probe::stop() {
    done_ = true;
    on_ready_ = nullptr;
    watch_.reset(); // inotify_rm_watch only: no descriptor is closed
    retry_timer_.cancel();
}

// (Re)places the probe's watch on the socket's directory or its nearest existing ancestor.
void readiness_probe::watch() {
    if (done_ || !inotify_) {
        return;
    }
    std::string dir = nearest_existing_dir(parent_dir(socket_path_));
    if (dir == watched_dir_ && watch_.active()) {
        return;
    }
    watch_.reset();
    watched_dir_.clear();
    std::string error;
    inotify_hub::subscription sub = inotify_->watch(
        dir,
        [weak = weak_from_this()] {
            if (auto self = weak.lock()) {
                self->on_inotify();
            }
        },
        error);
    if (!sub.active()) {
        // Without a watch the backoff timer alone drives the attempts (see attempt()).
        log(log_level::warning, "readiness of {}: {}", socket_path_, error);
        return;
    }
    watch_ = std::move(sub);
    watched_dir_ = dir;
}

void readiness_probe::on_inotify() {
    if (done_) {
        return;
    }
    // Any change in the watched directory: re-place the watch if a directory on the way
    // appeared (or the watched one went away), then try the socket.
    watch();
    attempt();
}

void readiness_probe::retry_later(std::chrono::milliseconds cap) {
    backoff_ = backoff_ == 0ms ? 1ms : std::min(backoff_ * 2, cap);
    retry_pending_ = true;
    retry_timer_.expires_after(backoff_);
    retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec || self->done_) {
            return;
        }
        self->retry_pending_ = false;
        self->attempt();
    });
}

void readiness_probe::attempt() {
    if (done_ || http_in_flight_) {
        return;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        observation_ = fmt::format("socket: {}", std::strerror(errno));
        retry_later(http_backoff_cap);
        return;
    }
    asio::local::stream_protocol::socket socket(io_);
    socket.assign(asio::local::stream_protocol(), fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
    int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    int err = r == 0 ? 0 : errno;
    if (err == ENOENT || err == ENOTDIR) {
        // Not there yet: inotify wakes us when it appears (no timer, unless inotify is missing).
        observation_ = fmt::format("no socket at {}", socket_path_);
        if (!watch_.active()) {
            retry_later(connect_backoff_cap);
        }
        return;
    }
    if (err == EAGAIN && http_path_.empty()) {
        // The listen backlog is full: it listens, so it is ready.
        succeed();
        return;
    }
    if (err != 0) {
        observation_ = fmt::format("connect {}: {}", socket_path_, std::strerror(err));
        if (!retry_pending_) {
            retry_later(connect_backoff_cap);
        }
        return;
    }
    if (http_path_.empty()) {
        succeed();
        return;
    }
    http_check(std::move(socket));
}

void readiness_probe::http_check(asio::local::stream_protocol::socket socket) {
    struct exchange {
        exchange(asio::local::stream_protocol::socket s, std::string req, asio::io_context& io)
            : socket(std::move(s)), request(std::move(req)), limit(io) {}
        asio::local::stream_protocol::socket socket;
        std::string request;
        asio::streambuf answer{http_status_line_limit};
        asio::steady_timer limit;
    };
    http_in_flight_ = true;
    auto ex = std::make_shared<exchange>(
        std::move(socket),
        fmt::format("GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", http_path_),
        io_);
    auto self = shared_from_this();
    ex->limit.expires_after(http_answer_limit);
    ex->limit.async_wait([ex](boost::system::error_code ec) {
        if (!ec) {
            boost::system::error_code ignored;
            ex->socket.close(ignored);
        }
    });
    auto finish = [self, ex](bool ready, std::string what) {
        ex->limit.cancel();
        self->http_in_flight_ = false;
        if (self->done_) {
            return;
        }
        if (ready) {
            self->succeed();
            return;
        }
        self->observation_ = std::move(what);
        if (!self->retry_pending_) {
            self->retry_later(http_backoff_cap);
        }
    };
    asio::async_write(ex->socket, asio::buffer(ex->request),
                      [ex, finish](boost::system::error_code ec, std::size_t) {
                          if (ec) {
                              finish(false, fmt::format("HTTP request: {}", ec.message()));
                              return;
                          }
                          asio::async_read_until(
                              ex->socket, ex->answer, "\r\n",
                              [ex, finish](boost::system::error_code ec2, std::size_t n) {
                                  if (ec2) {
                                      finish(false, fmt::format("HTTP answer: {}", ec2.message()));
                                      return;
                                  }
                                  std::string line(asio::buffers_begin(ex->answer.data()),
                                                   asio::buffers_begin(ex->answer.data()) +
                                                       static_cast<std::ptrdiff_t>(n - 2));
                                  int status = parse_status(line);
                                  if (status >= 200 && status < 400) {
                                      finish(true, {});
                                      return;
                                  }
                                  finish(false, status == 0 ? fmt::format("bad HTTP answer")
                                                            : fmt::format("HTTP {}", status));
                              });
                      });
}

void readiness_probe::succeed() {
    if (done_) {
        return;
    }
    // READY goes out first; the clean-up (a watch removal and a timer cancel) follows.
    auto on_ready = std::move(on_ready_);
    done_ = true;
    auto self = shared_from_this(); // on_ready may drop the owner's reference
    if (on_ready) {
        on_ready();
    }
    stop();
}

} // namespace ondemand::helperd
