// coldclient: one timed request to a cold app, with the app's socket watched at the same time.
//
//   coldclient --port PORT --app NAME --watch SOCKET [--timeout-ms MS]
//
// Sends "GET / HTTP/1.1" with "X-App: NAME" to 127.0.0.1:PORT and reads the whole answer
// (Connection: close). Meanwhile a second thread connects to SOCKET (the app's own unix socket)
// every 50 us and records when it first accepts. Prints, with CLOCK_MONOTONIC in microseconds
// (the clock of systemd's *TimestampMonotonic properties):
//
//   status=<HTTP status or 0> t0_us=<before connect> acc_us=<app socket first accepted, or 0>
//   end_us=<answer complete>
//
// bench/cold.sh combines that with the unit's ExecMainStartTimestampMonotonic to split the
// first request's latency into: request -> app process forked, the app's own start-up
// (fork -> socket accepts), and socket accepts -> answer at the client.

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <time.h>
#include <unistd.h>

#include "unix_accepts.h"

namespace {

uint64_t now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
}

} // namespace

int main(int argc, char** argv) {
    int port = 0;
    std::string app, watch;
    long timeout_ms = 40000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--port")
            port = std::atoi(argv[i + 1]);
        else if (a == "--app")
            app = argv[i + 1];
        else if (a == "--watch")
            watch = argv[i + 1];
        else if (a == "--timeout-ms")
            timeout_ms = std::atol(argv[i + 1]);
    }
    if (port <= 0 || app.empty() || watch.empty()) {
        std::fprintf(stderr, "usage: coldclient --port PORT --app NAME --watch SOCKET\n");
        return 2;
    }

    std::atomic<bool> done{false};
    std::atomic<uint64_t> acc_us{0};
    uint64_t t0 = now_us();
    uint64_t deadline = t0 + uint64_t(timeout_ms) * 1000u;
    std::thread watcher([&] {
        const timespec tick{0, 50 * 1000};
        while (!done.load() && now_us() < deadline) {
            if (unix_accepts(watch)) {
                acc_us = now_us();
                return;
            }
            nanosleep(&tick, nullptr);
        }
    });

    int status = 0;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string resp;
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
        std::string req =
            "GET / HTTP/1.1\r\nHost: bench\r\nX-App: " + app + "\r\nConnection: close\r\n\r\n";
        if (::write(fd, req.data(), req.size()) == ssize_t(req.size())) {
            char buf[4096];
            for (;;) {
                pollfd p{fd, POLLIN, 0};
                long left = long(deadline - std::min(deadline, now_us())) / 1000;
                if (left <= 0 || ::poll(&p, 1, int(left)) <= 0)
                    break;
                ssize_t n = ::read(fd, buf, sizeof(buf));
                if (n <= 0)
                    break;
                resp.append(buf, size_t(n));
            }
        }
    }
    uint64_t end = now_us();
    if (fd >= 0)
        ::close(fd);
    done = true;
    watcher.join();
    if (resp.size() > 12 && resp.compare(0, 5, "HTTP/") == 0)
        status = std::atoi(resp.c_str() + 9);
    std::printf("status=%d t0_us=%llu acc_us=%llu end_us=%llu\n", status, (unsigned long long)t0,
                (unsigned long long)acc_us.load(), (unsigned long long)end);
    return 0;
}
