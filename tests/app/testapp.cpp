// ondemand-testapp: a small HTTP/1.1 server on a unix socket, the "web app" that ondemand's
// tests, demo and benchmarks start and stop through systemd.
//
//   ondemand-testapp --socket PATH [--name NAME] [--delay-ms N] [--exit-before-listen[=CODE]]
//                    [--never-listen] [--backlog N] [--notify] [--log-requests]
//                    [--alloc-mib N]
//
// Start-up: with --alloc-mib, allocate N MiB and write every page of it (so that it is resident:
// the memory tests and benchmarks, docs/lifecycle.md "A memory budget"); sleep --delay-ms (a slow
// app), then either exit with CODE (--exit-before-listen,
// default 3), stay up without ever creating the socket (--never-listen), or bind + listen,
// chmod 0666 and, with --notify, sd_notify("READY=1"). SIGTERM/SIGINT: unlink the socket (if it is
// still ours) and exit 0.
//
// Routes (any method): /sleep?ms=N answers after N ms; /echo echoes the request body (length also
// in X-Body-Length); /status/N answers status N; anything else 200. Bodies other than /echo are
// "app=<name> pid=<pid> path=<request target>\n". Every response carries X-App and X-Pid.
// Keep-alive (HTTP/1.1 default, HTTP/1.0 with "Connection: keep-alive"), request bodies by
// Content-Length or chunked. Malformed requests get 400 and the connection is closed.
//
// Single-threaded io_context, one coroutine per connection; per-connection buffers are reused
// across requests, so a keep-alive request allocates nothing in the steady state.

#include <utility> // before Boost: 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::local::stream_protocol;
using namespace std::literals;

namespace {

constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr unsigned long kMaxSleepMs = 10 * 60 * 1000;

struct Options {
    std::string socket_path;
    std::string name = "testapp";
    unsigned long delay_ms = 0;
    std::optional<int> exit_before_listen; // exit code
    bool never_listen = false;
    int backlog = 128;
    bool notify = false;
    bool log_requests = false;
    unsigned long alloc_mib = 0;
};

// The process-wide state: options plus what the signal handler needs to clean up.
struct App {
    Options opt;
    std::string pid = std::to_string(::getpid());
    std::optional<struct stat> bound_socket; // identity of the socket file we created
    int exit_code = 0;
};

// One line per event on stderr, written with a single write(2) so lines never interleave.
[[gnu::format(printf, 2, 3)]] void log_line(const App& app, const char* fmt, ...) {
    std::array<char, 1024> line;
    const int room = line.size() - 1; // keep one byte for the newline
    int n = std::snprintf(line.data(), room, "ondemand-testapp[%s/%s]: ", app.opt.name.c_str(),
                          app.pid.c_str());
    n = std::clamp(n, 0, room - 1);
    va_list ap;
    va_start(ap, fmt);
    int m = std::vsnprintf(line.data() + n, room - n, fmt, ap);
    va_end(ap);
    n = std::clamp(n + std::max(m, 0), 0, room - 1); // truncated lines stay one line
    line[n++] = '\n';
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), n);
}

template <typename T> bool parse_number(std::string_view s, T& out, int base = 10) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool is_token(std::string_view s) {
    if (s.empty())
        return false;
    for (unsigned char c : s)
        if (c <= ' ' || c >= 0x7f || std::strchr("\"(),/:;<=>?@[\\]{}", c))
            return false;
    return true;
}

const char* reason_phrase(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

// What the handler needs from a request head; `target` keeps its capacity across requests.
struct Request {
    std::string target;
    bool head = false; // HEAD: headers only
    bool keep_alive = true;
    bool chunked = false;
    bool expect_continue = false;
    std::optional<std::size_t> content_length;

    void reset() {
        target.clear();
        head = chunked = expect_continue = false;
        keep_alive = true;
        content_length.reset();
    }
};

// Parses "METHOD SP TARGET SP HTTP/1.x CRLF (NAME: VALUE CRLF)*" (the head without the final
// CRLF). Returns an error text for the log, or nullptr when the head is valid.
const char* parse_head(std::string_view head, Request& req) {
    req.reset();
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);

    auto sp1 = line.find(' ');
    auto sp2 = line.find(' ', sp1 == std::string_view::npos ? sp1 : sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos)
        return "malformed request line";
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method))
        return "bad method";
    if (target.empty() || target.front() != '/' ||
        target.find_first_of(" \t\x7f"sv) != std::string_view::npos)
        return "bad request target";
    for (unsigned char c : target)
        if (c < ' ')
            return "bad request target";
    if (version == "HTTP/1.0")
        req.keep_alive = false;
    else if (version != "HTTP/1.1")
        return "unsupported HTTP version";
    req.head = method == "HEAD";
    req.target.assign(target);

    bool has_te = false;
    while (!head.empty()) {
        eol = head.find("\r\n");
        line = head.substr(0, eol);
        head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 2);
        auto colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
            return "malformed header line";
        std::string_view name = line.substr(0, colon);
        std::string_view value = trim(line.substr(colon + 1));
        for (unsigned char c : value)
            if ((c < ' ' && c != '\t') || c == 0x7f)
                return "control character in header value";
        if (iequals(name, "Content-Length")) {
            std::size_t n;
            if (!parse_number(value, n) || (req.content_length && *req.content_length != n))
                return "bad Content-Length";
            req.content_length = n;
        } else if (iequals(name, "Transfer-Encoding")) {
            if (!iequals(value, "chunked") || has_te)
                return "unsupported Transfer-Encoding";
            has_te = req.chunked = true;
        } else if (iequals(name, "Connection")) {
            if (iequals(value, "close"))
                req.keep_alive = false;
            else if (iequals(value, "keep-alive"))
                req.keep_alive = true;
        } else if (iequals(name, "Expect")) {
            req.expect_continue = iequals(value, "100-continue");
        }
    }
    if (req.chunked && req.content_length)
        return "both Content-Length and Transfer-Encoding";
    if (req.content_length && *req.content_length > kMaxBodyBytes)
        return "body too large";
    return nullptr;
}

// One client connection: reads requests, answers them, until the peer closes or errs.
class Connection {
  public:
    Connection(App& app, stream_protocol::socket socket)
        : app_(app), socket_(std::move(socket)), timer_(socket_.get_executor()) {}

    awaitable<void> run() {
        try {
            while (co_await serve_one()) {
            }
        } catch (const boost::system::system_error& e) {
            // a client that goes away mid-response is normal (benchmarks, timeouts)
            if (e.code() != asio::error::broken_pipe && e.code() != asio::error::connection_reset)
                log_line(app_, "connection error: %s", e.what());
        } catch (const std::exception& e) {
            log_line(app_, "connection error: %s", e.what());
        }
        boost::system::error_code ignored;
        socket_.shutdown(stream_protocol::socket::shutdown_send, ignored);
        socket_.close(ignored);
    }

  private:
    // Serves one request; false = close the connection.
    awaitable<bool> serve_one() {
        // The head: everything up to the empty line.
        std::size_t head_end, scanned = 0;
        while ((head_end = in_.find("\r\n\r\n", scanned)) == std::string::npos) {
            if (in_.size() > kMaxHeaderBytes)
                co_return co_await bad_request("request head too large");
            scanned = in_.size() < 3 ? 0 : in_.size() - 3;
            if (!co_await read_more())
                co_return false; // peer closed between requests (or mid-request): just close
        }
        if (head_end > kMaxHeaderBytes)
            co_return co_await bad_request("request head too large");
        if (const char* error = parse_head(std::string_view(in_).substr(0, head_end + 2), req_))
            co_return co_await bad_request(error);
        pos_ = head_end + 4;

        // The body.
        if (req_.expect_continue && (req_.chunked || req_.content_length.value_or(0) > 0))
            co_await asio::async_write(socket_, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n"sv),
                                       use_awaitable);
        body_.clear();
        if (req_.chunked) {
            // (no co_await inside ?: here: GCC 12 evaluates both arms)
            const char* error = co_await read_chunked_body();
            if (error && !*error)
                co_return false;
            if (error)
                co_return co_await bad_request(error);
        } else if (std::size_t length = req_.content_length.value_or(0)) {
            while (in_.size() - pos_ < length)
                if (!co_await read_more())
                    co_return false;
            body_.assign(in_, pos_, length);
            pos_ += length;
        }
        in_.erase(0, pos_); // keeps what a pipelining client sent after this request

        co_await respond();
        co_return req_.keep_alive;
    }

    // Appends whatever the socket has to in_; false on EOF or error.
    awaitable<bool> read_more() {
        boost::system::error_code ec;
        std::size_t n = co_await socket_.async_read_some(asio::buffer(chunk_),
                                                         asio::redirect_error(use_awaitable, ec));
        if (ec)
            co_return false;
        in_.append(chunk_.data(), n);
        co_return true;
    }

    // Reads one CRLF-terminated line starting at pos_ into `line`; false on EOF.
    awaitable<bool> read_line(std::string_view& line) {
        std::size_t eol;
        while ((eol = in_.find("\r\n", pos_)) == std::string::npos) {
            if (in_.size() - pos_ > kMaxHeaderBytes)
                co_return false;
            if (!co_await read_more())
                co_return false;
        }
        line = std::string_view(in_).substr(pos_, eol - pos_);
        pos_ = eol + 2;
        co_return true;
    }

    // Decodes a chunked body into body_. Returns nullptr on success, "" when the peer went away,
    // or an error text for a 400.
    awaitable<const char*> read_chunked_body() {
        for (;;) {
            std::string_view line;
            if (!co_await read_line(line))
                co_return "";
            std::size_t size;
            if (!parse_number(trim(line.substr(0, line.find(';'))), size, 16))
                co_return "bad chunk size";
            if (size == 0)
                break;
            if (size > kMaxBodyBytes - body_.size())
                co_return "body too large";
            while (in_.size() - pos_ < size + 2)
                if (!co_await read_more())
                    co_return "";
            if (in_.compare(pos_ + size, 2, "\r\n") != 0)
                co_return "chunk not followed by CRLF";
            body_.append(in_, pos_, size);
            pos_ += size + 2;
        }
        for (;;) { // trailer fields, ignored, up to the empty line
            std::string_view line;
            if (!co_await read_line(line))
                co_return "";
            if (line.empty())
                co_return nullptr;
        }
    }

    awaitable<void> respond() {
        std::string_view path = std::string_view(req_.target).substr(0, req_.target.find('?'));
        std::string_view query = std::string_view(req_.target).substr(path.size());
        int status = 200;
        bool echo = false;

        if (path == "/sleep") {
            unsigned long ms = 0;
            auto at = query.find("ms=");
            if (at != std::string_view::npos && (at == 1 || query[at - 1] == '&')) {
                auto value = query.substr(at + 3);
                parse_number(value.substr(0, value.find('&')), ms);
            }
            // Tests wait for this line to know that a slow request is in flight.
            if (app_.opt.log_requests)
                log_line(app_, "sleeping %lu ms for %s", ms, req_.target.c_str());
            // The coroutine suspends; other connections keep being served meanwhile.
            timer_.expires_after(std::chrono::milliseconds(std::min(ms, kMaxSleepMs)));
            co_await timer_.async_wait(use_awaitable);
        } else if (path == "/echo") {
            echo = true;
        } else if (path.starts_with("/status/")) {
            if (!parse_number(path.substr(8), status) || status < 200 || status > 599) {
                co_await bad_request("bad status in /status/N");
                req_.keep_alive = false;
                co_return;
            }
        }

        if (!echo) {
            body_.assign("app=").append(app_.opt.name).append(" pid=").append(app_.pid);
            body_.append(" path=").append(req_.target).append("\n");
        }
        bool no_body = status == 204 || status == 304;
        if (no_body)
            body_.clear();

        out_.assign("HTTP/1.1 ");
        append_number(status);
        out_.append(" ").append(reason_phrase(status)).append("\r\n");
        out_.append("Content-Type: ").append(echo ? "application/octet-stream" : "text/plain");
        if (!no_body) {
            out_.append("\r\nContent-Length: ");
            append_number(body_.size());
        }
        if (echo) {
            out_.append("\r\nX-Body-Length: ");
            append_number(body_.size());
        }
        out_.append("\r\nX-App: ").append(app_.opt.name);
        out_.append("\r\nX-Pid: ").append(app_.pid);
        out_.append(req_.keep_alive ? "\r\nConnection: keep-alive\r\n\r\n"
                                    : "\r\nConnection: close\r\n\r\n");
        if (app_.opt.log_requests)
            log_line(app_, "%d %s", status, req_.target.c_str());

        std::array<asio::const_buffer, 2> buffers{asio::buffer(out_), asio::buffer(body_)};
        if (req_.head)
            buffers[1] = asio::const_buffer();
        co_await asio::async_write(socket_, buffers, use_awaitable);
    }

    // Answers 400 and ends the connection (returns false for serve_one).
    awaitable<bool> bad_request(const char* why) {
        log_line(app_, "400 bad request: %s", why);
        body_.assign("bad request: ").append(why).append("\n");
        out_.assign("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ");
        append_number(body_.size());
        out_.append("\r\nX-App: ").append(app_.opt.name);
        out_.append("\r\nX-Pid: ").append(app_.pid);
        out_.append("\r\nConnection: close\r\n\r\n");
        std::array<asio::const_buffer, 2> buffers{asio::buffer(out_), asio::buffer(body_)};
        co_await asio::async_write(socket_, buffers, use_awaitable);
        co_return false;
    }

    void append_number(std::size_t n) {
        std::array<char, 24> digits;
        auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), n);
        out_.append(digits.data(), end);
    }

    App& app_;
    stream_protocol::socket socket_;
    asio::steady_timer timer_;      // for /sleep
    std::array<char, 16384> chunk_; // read buffer
    std::string in_;                // received, not yet consumed bytes
    std::size_t pos_ = 0;           // parse position in in_ while reading a body
    Request req_;
    std::string body_; // request body, then response body
    std::string out_;  // response head
};

// Removes the socket file only if it is still the one we created (a newer instance may own the
// path by now).
void unlink_own_socket(App& app) {
    struct stat now;
    if (app.bound_socket && ::lstat(app.opt.socket_path.c_str(), &now) == 0 &&
        now.st_dev == app.bound_socket->st_dev && now.st_ino == app.bound_socket->st_ino) {
        ::unlink(app.opt.socket_path.c_str());
        log_line(app, "removed socket %s", app.opt.socket_path.c_str());
    }
    app.bound_socket.reset();
}

// The connection lives in this coroutine's frame for as long as it is served.
awaitable<void> serve(App& app, stream_protocol::socket socket) {
    Connection connection(app, std::move(socket));
    co_await connection.run();
}

awaitable<void> accept_loop(App& app, stream_protocol::acceptor& acceptor) {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer backoff(executor);
    for (;;) {
        boost::system::error_code ec;
        auto socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted)
            co_return;
        if (ec) {
            // e.g. EMFILE: don't spin; resume shortly
            log_line(app, "accept failed: %s", ec.message().c_str());
            backoff.expires_after(50ms);
            co_await backoff.async_wait(use_awaitable);
            continue;
        }
        asio::co_spawn(executor, serve(app, std::move(socket)), asio::detached);
    }
}

// --alloc-mib: N MiB, every page written, held until exit.
std::vector<char> resident_memory;

void allocate_resident(App& app) {
    constexpr std::size_t mib = 1024 * 1024;
    if (app.opt.alloc_mib == 0)
        return;
    resident_memory.assign(app.opt.alloc_mib * mib, '\x5a'); // assign() touches every byte
    log_line(app, "allocated %lu MiB (--alloc-mib)", app.opt.alloc_mib);
}

awaitable<void> start(App& app, asio::io_context& io, stream_protocol::acceptor& acceptor) {
    const Options& opt = app.opt;
    allocate_resident(app);
    if (opt.delay_ms > 0) {
        log_line(app, "delaying start-up by %lu ms", opt.delay_ms);
        asio::steady_timer delay(co_await asio::this_coro::executor,
                                 std::chrono::milliseconds(opt.delay_ms));
        co_await delay.async_wait(use_awaitable);
    }
    if (opt.exit_before_listen) {
        log_line(app, "exiting with code %d before listening (--exit-before-listen)",
                 *opt.exit_before_listen);
        app.exit_code = *opt.exit_before_listen;
        io.stop();
        co_return;
    }
    if (opt.never_listen) {
        log_line(app, "running, never listening (--never-listen)");
        co_return; // the signal set keeps the loop alive
    }

    // Remove a stale socket file left by a killed instance, but never anything that isn't a socket.
    struct stat st;
    if (::lstat(opt.socket_path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error(opt.socket_path + " exists and is not a socket");
        ::unlink(opt.socket_path.c_str());
    }
    stream_protocol::endpoint endpoint(opt.socket_path);
    acceptor.open(endpoint.protocol());
    acceptor.bind(endpoint);
    if (::lstat(opt.socket_path.c_str(), &st) == 0)
        app.bound_socket = st;
    // The proxy (nginx) runs as another user.
    if (::chmod(opt.socket_path.c_str(), 0666) != 0)
        log_line(app, "chmod %s: %s", opt.socket_path.c_str(), std::strerror(errno));
    acceptor.listen(opt.backlog);
    log_line(app, "listening on %s (backlog %d)", opt.socket_path.c_str(), opt.backlog);
    if (opt.notify) {
        int r = sd_notify(0, "READY=1");
        log_line(app, "sd_notify READY=1: %s",
                 r > 0    ? "sent"
                 : r == 0 ? "no NOTIFY_SOCKET"
                          : "failed");
    }
    co_await accept_loop(app, acceptor);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "ondemand-testapp: %s\n"
                 "usage: ondemand-testapp --socket PATH [--name NAME] [--delay-ms N]\n"
                 "         [--exit-before-listen[=CODE]] [--never-listen] [--backlog N] "
                 "[--notify] [--log-requests] [--alloc-mib N]\n",
                 why);
    std::exit(2);
}

Options parse_args(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::optional<std::string_view> inline_value;
        if (auto eq = arg.find('='); eq != std::string_view::npos) {
            inline_value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        // The value of "--opt VALUE" or "--opt=VALUE".
        auto value = [&]() -> std::string_view {
            if (inline_value)
                return *inline_value;
            if (i + 1 >= argc)
                usage("missing value");
            return argv[++i];
        };
        auto number = [&](auto& out) {
            if (!parse_number(value(), out))
                usage("bad number");
        };
        if (arg == "--socket")
            opt.socket_path = value();
        else if (arg == "--name")
            opt.name = value();
        else if (arg == "--delay-ms")
            number(opt.delay_ms);
        else if (arg == "--backlog")
            number(opt.backlog);
        else if (arg == "--alloc-mib") {
            number(opt.alloc_mib);
            if (opt.alloc_mib > 64 * 1024)
                usage("bad --alloc-mib (at most 65536)");
        } else if (arg == "--exit-before-listen") {
            int code = 3;
            if (inline_value && !parse_number(*inline_value, code))
                usage("bad exit code");
            opt.exit_before_listen = code;
        } else if (arg == "--never-listen" && !inline_value)
            opt.never_listen = true;
        else if (arg == "--notify" && !inline_value)
            opt.notify = true;
        else if (arg == "--log-requests" && !inline_value)
            opt.log_requests = true;
        else if (arg == "--help" || arg == "-h")
            usage("help");
        else
            usage(("unknown argument " + std::string(argv[i])).c_str());
    }
    if (opt.socket_path.empty() && !opt.exit_before_listen && !opt.never_listen)
        usage("--socket is required");
    if (opt.socket_path.size() >= sizeof(sockaddr_un::sun_path))
        usage("socket path too long");
    // The name goes into a response header and the log: printable ASCII, no spaces.
    bool printable = std::all_of(opt.name.begin(), opt.name.end(),
                                 [](unsigned char c) { return c > ' ' && c < 0x7f; });
    if (opt.name.empty() || opt.name.size() > 200 || !printable)
        usage("bad --name (1-200 printable characters, no spaces)");
    return opt;
}

} // namespace

int main(int argc, char** argv) {
    App app;
    app.opt = parse_args(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);

    asio::io_context io;
    stream_protocol::acceptor acceptor(io);
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec)
            return;
        log_line(app, "got %s, exiting", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        unlink_own_socket(app);
        app.exit_code = 0;
        io.stop();
    });
    asio::co_spawn(io, start(app, io, acceptor), [&](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log_line(app, "start-up failed: %s", ex.what());
        }
        unlink_own_socket(app);
        app.exit_code = 1;
        io.stop();
    });
    log_line(app, "started (socket %s)", app.opt.socket_path.c_str());
    io.run();
    return app.exit_code;
}
