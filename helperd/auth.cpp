// auth: the shared key, /proc/PID/stat's parent pid, and the instance name registry (see
// auth.h). No logging: the server logs what it refuses.
#include "auth.h"

#include "ondemand_protocol.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace ondemand::helperd {

bool keys_equal(std::string_view a, std::string_view b) {
    // Fixed work: every byte of both fixed-size buffers is looked at whatever the contents and
    // lengths; the differences are OR-ed together, with no branch on them.
    constexpr std::size_t n = proto::max_key_length;
    std::array<unsigned char, n> x{};
    std::array<unsigned char, n> y{};
    std::size_t la = a.size() < n ? a.size() : n;
    std::size_t lb = b.size() < n ? b.size() : n;
    std::memcpy(x.data(), a.data(), la);
    std::memcpy(y.data(), b.data(), lb);
    unsigned diff = 0;
    for (std::size_t i = 0; i < n; ++i) {
        diff |= static_cast<unsigned>(x[i] ^ y[i]);
    }
    // The lengths take part too; anything beyond the buffer makes the keys unequal.
    diff |= static_cast<unsigned>(a.size() ^ b.size());
    diff |= static_cast<unsigned>(a.size() > n) | static_cast<unsigned>(b.size() > n);
    volatile unsigned result = diff;
    return result == 0;
}

bool shared_key::matches(std::string_view offered) const {
    return required() && keys_equal(key_, offered);
}

std::string read_key_file(const std::string& path) {
    auto fail = [&path](const std::string& what) {
        return std::runtime_error("key file " + path + ": " + what);
    };
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        throw fail(std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw fail("not a regular file");
    }
    // One byte more than the longest file allowed (a key and its '\n'), to see that it is more.
    std::array<char, proto::max_key_length + 2> buf{};
    std::size_t len = 0;
    while (len < buf.size()) {
        ssize_t r = ::read(fd, buf.data() + len, buf.size() - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int err = errno;
            ::close(fd);
            throw fail(std::string("cannot read: ") + std::strerror(err));
        }
        if (r == 0) {
            break;
        }
        len += static_cast<std::size_t>(r);
    }
    ::close(fd);
    std::string_view contents(buf.data(), len);
    std::string_view key;
    if (const char* bad = proto::key_from_file(contents, key)) {
        throw fail(bad);
    }
    std::string out(key);
    // The copy on the stack is not left behind.
    volatile char* p = buf.data();
    for (std::size_t i = 0; i < buf.size(); ++i) {
        p[i] = 0;
    }
    return out;
}

std::optional<pid_t> parent_pid_from_stat(std::string_view stat) {
    // "PID (COMM) STATE PPID ...": COMM may hold anything, ')' included; it ends at the last ')'.
    std::size_t close = stat.rfind(')');
    if (close == std::string_view::npos || stat.find('(') > close) {
        return std::nullopt;
    }
    std::string_view rest = stat.substr(close + 1);
    // " S 1234 ..."
    if (rest.size() < 4 || rest[0] != ' ' || rest[2] != ' ') {
        return std::nullopt;
    }
    rest.remove_prefix(3);
    std::size_t end = rest.find(' ');
    std::string_view field = rest.substr(0, end);
    long long ppid = -1;
    auto [p, ec] = std::from_chars(field.data(), field.data() + field.size(), ppid);
    if (ec != std::errc{} || p != field.data() + field.size() || field.empty() || ppid < 0 ||
        ppid > 0x3fffffff) {
        return std::nullopt;
    }
    return static_cast<pid_t>(ppid);
}

std::optional<pid_t> read_parent_pid(pid_t pid, std::string& why) {
    if (pid <= 0) {
        why = "the kernel did not report the peer's pid";
        return std::nullopt;
    }
    std::string path = "/proc/" + std::to_string(pid) + "/stat";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT && ::kill(pid, 0) != 0 && errno == ESRCH) {
            why = "the process has exited";
        } else if (err == ENOENT) {
            // It lives (kill says so) but /proc hides it: ProtectProc=invisible, hidepid=.
            why = "pid " + std::to_string(pid) + " is hidden in /proc (ProtectProc=, hidepid=)";
        } else {
            why = "cannot open " + path + ": " + std::strerror(err);
        }
        return std::nullopt;
    }
    // One read: the kernel makes the whole line at once. A comm is at most 16 bytes, so the
    // fields up to ppid are well within this.
    std::array<char, 1024> buf{};
    ssize_t n = 0;
    do {
        n = ::read(fd, buf.data(), buf.size());
    } while (n < 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    if (n <= 0) {
        why = n == 0 || err == ESRCH
                  ? "the process has exited"
                  : std::string("cannot read ") + path + ": " + std::strerror(err);
        return std::nullopt;
    }
    std::optional<pid_t> ppid =
        parent_pid_from_stat(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    if (!ppid) {
        why = "cannot parse " + path;
    }
    return ppid;
}

bool instance_registry::claim(const std::string& name, client_id id, const instance_holder& who,
                              instance_holder* holder) {
    auto it = names_.find(name);
    if (it != names_.end() && !it->second.clients.empty() && !(it->second.holder == who)) {
        if (holder != nullptr) {
            *holder = it->second.holder;
        }
        return false;
    }
    release(id);
    entry& e = names_[name];
    e.holder = who;
    e.clients.insert(id);
    by_client_[id] = name;
    return true;
}

void instance_registry::release(client_id id) {
    auto c = by_client_.find(id);
    if (c == by_client_.end()) {
        return;
    }
    auto it = names_.find(c->second);
    if (it != names_.end()) {
        it->second.clients.erase(id);
        if (it->second.clients.empty()) {
            names_.erase(it);
        }
    }
    by_client_.erase(c);
}

} // namespace ondemand::helperd
