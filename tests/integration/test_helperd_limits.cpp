// helperd's limits against the real helperd and systemd (docs/helperd.md, "Limits"): the
// connection caps, the line timeout, the app record cap, and an adversarial client mix while a
// legitimate START from a fresh client keeps getting READY.
#include "helperd_fixture.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace ondemand::testing;
using ::testing::HasSubstr;
using ::testing::Lt;

namespace {

// helperd's resident set, from /proc/PID/status (kB), or -1.
long vm_rss_kb(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    while (in >> key) {
        if (key == "VmRSS:") {
            long kb = -1;
            in >> kb;
            return kb;
        }
        in.ignore(1 << 20, '\n');
    }
    return -1;
}

int raw_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Writes everything it can; stops quietly when helperd closes the connection.
void send_all(int fd, const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        done += static_cast<std::size_t>(n);
    }
}

// A child process, as uid/gid 65534 (another peer than the tests' root), that opens `count`
// connections to `path`, says how many on `report`, and holds them until `hold` is closed.
pid_t idle_connections(const std::string& path, int count, int report, int hold,
                       int hold_other_end) {
    pid_t pid = ::fork();
    if (pid != 0) {
        return pid;
    }
    ::close(hold_other_end); // EOF on `hold` when the parent closes its end
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
        ::_exit(3);
    }
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
        int fd = raw_connect(path);
        if (fd >= 0) {
            fds.push_back(fd);
        }
    }
    int opened = static_cast<int>(fds.size());
    (void)!::write(report, &opened, sizeof(opened));
    char c = 0;
    (void)!::read(hold, &c, 1); // until the parent closes its end
    ::_exit(0);
}

} // namespace

TEST_F(HelperdTest, ConnectionCapsRefuseWithTheCapsName) {
    start_helperd({"--max-connections", "3", "--max-connections-per-uid", "2"});
    auto a = connect();
    auto b = connect();
    a->send("STATUS");
    b->send("STATUS");
    EXPECT_EQ(a->read_line(), "END");
    EXPECT_EQ(b->read_line(), "END");
    auto c = connect();
    EXPECT_EQ(c->read_line(), "ERROR connection limit: max_connections_per_uid=2");
    EXPECT_TRUE(c->wait_closed());
    EXPECT_EQ(count_log("connection limit max_connections_per_uid=2"), 1);
    a.reset();
    // A slot is free again once a client has gone.
    std::optional<std::string> answer;
    for (int i = 0; i < 50 && answer != "END"; ++i) {
        auto d = connect();
        d->send("STATUS");
        answer = d->read_line(2s);
    }
    EXPECT_EQ(answer, "END");
}

TEST_F(HelperdTest, TotalConnectionCap) {
    start_helperd({"--max-connections", "2"});
    auto a = connect();
    auto b = connect();
    a->send("STATUS");
    b->send("STATUS");
    EXPECT_EQ(a->read_line(), "END");
    EXPECT_EQ(b->read_line(), "END");
    auto c = connect();
    EXPECT_EQ(c->read_line(), "ERROR connection limit: max_connections=2");
    EXPECT_TRUE(c->wait_closed());
}

TEST_F(HelperdTest, HalfLineTimesOut) {
    start_helperd({"--line-timeout-ms", "1000"});
    auto idle = connect();
    auto half = connect();
    auto whole = connect();
    half->send_raw("START blog 1 ondemand-it-x.ser");
    whole->send("STATUS");
    EXPECT_EQ(whole->read_line(), "END");
    EXPECT_TRUE(half->wait_closed(10s)) << "a half line is not kept forever";
    EXPECT_TRUE(idle->wait_closed(10s)) << "nor a connection that never sends a line";
    EXPECT_GE(count_log("(line timeout)"), 2);
    EXPECT_THAT(helperd_log(), HasSubstr("closed: a partial line (30 bytes) for 1000 ms"));
    whole->send("STATUS");
    EXPECT_EQ(whole->read_line(), "END") << "a client idle between lines stays";
}

TEST_F(HelperdTest, AppRecordsAreCapped) {
    start_helperd({"--max-apps", "50"});
    auto c = connect();
    std::string lines;
    for (int i = 0; i < 60; ++i) {
        lines += "WAIT junk" + std::to_string(i) + " 1\n";
    }
    c->send_raw(lines);
    EXPECT_EQ(c->read_line(), "ERROR app limit: max_apps=50")
        << "pending WAITs are not idle: the 51st name is refused";
    // Once the WAITs are gone, their records are idle: dropped to make room for new names
    // (helperd scans for idle records at most every 100 ms after a scan that freed little).
    c.reset();
    std::optional<std::string> answer;
    for (int i = 0; i < 100 && answer != "END"; ++i) {
        auto d = connect();
        d->send("USE fresh" + std::to_string(i) + " 1 1000");
        d->send("STATUS");
        answer = d->read_line(5s);
        if (answer != "END") {
            std::this_thread::sleep_for(50ms); // a retry's pause, past the scan's 100 ms
        }
    }
    EXPECT_EQ(answer, "END");
    EXPECT_GE(count_log("dropped"), 1);
}

// The adversarial mix (#12), one after the other against one helperd limited to 1024
// descriptors; after each, a fresh client's START of a ready app is answered READY and
// helperd's RSS stays bounded.
TEST_F(HelperdTest, AdversarialClientsDoNotExhaustHelperd) {
#if defined(__SANITIZE_ADDRESS__)
    // ASan keeps freed memory in quarantine (256 MB) and adds shadow memory: an RSS bound says
    // nothing there, and its exit-time leak check outlasts the fixture's deadline. The plain
    // build runs this test; the sanitized build runs the other limits tests.
    GTEST_SKIP() << "RSS bounds are not meaningful under AddressSanitizer";
#endif
    std::signal(SIGPIPE, SIG_IGN);
    rlimit lim{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
    if (lim.rlim_max < 4096) {
        GTEST_SKIP() << "needs 4096 descriptors for the idle connections";
    }
    lim.rlim_cur = lim.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);

    std::string unit = testapp_unit("legit", "");
    helperd_wrapper_ = {"/usr/bin/prlimit", "--nofile=1024:1024", "--"};
    start_helperd({"--socket-mode", "0666", "--line-timeout-ms", "3000"});
    std::uint64_t gen = 0;
    auto legit_start = [&](const char* during) {
        SCOPED_TRACE(during);
        auto c = connect();
        ASSERT_TRUE(c->connected());
        ++gen;
        c->send(start_line("legit", gen, unit));
        EXPECT_EQ(c->read_line(30s), "READY legit " + std::to_string(gen));
    };
    auto rss_bounded = [&](const char* after) {
        long kb = vm_rss_kb(helperd_pid_);
        ASSERT_GT(kb, 0);
        EXPECT_THAT(kb, Lt(64 * 1024)) << "helperd's RSS (kB) after " << after;
        std::printf("helperd VmRSS after %s: %ld kB\n", after, kb);
    };
    legit_start("start-up");
    rss_bounded("start-up");

    // 200k junk app names (USE and WAIT) from a few clients that read nothing.
    {
        std::vector<int> fds;
        for (int k = 0; k < 4; ++k) {
            int fd = raw_connect(helperd_socket_);
            ASSERT_GE(fd, 0);
            std::string lines;
            for (int i = 0; i < 50000; ++i) {
                std::string name = "j" + std::to_string(k) + "x" + std::to_string(i);
                lines += (i % 4 == 0 ? "WAIT " + name + " 1\n" : "USE " + name + " 1 60000\n");
            }
            send_all(fd, lines);
            fds.push_back(fd);
        }
        legit_start("200k junk names");
        rss_bounded("200k junk names");
        for (int fd : fds) {
            ::close(fd);
        }
    }

    // 20 clients that never read while helperd answers them (ERROR for each reply verb sent
    // to it, STATUS): each is dropped at its 4 MiB once its socket buffer is full.
    {
        std::vector<int> fds;
        std::string lines;
        for (int i = 0; i < 160000; ++i) {
            lines += i % 1000 == 0 ? "STATUS\n" : "READY x 1\n";
        }
        for (int k = 0; k < 20; ++k) {
            int fd = raw_connect(helperd_socket_);
            ASSERT_GE(fd, 0);
            fds.push_back(fd);
        }
        for (int fd : fds) {
            send_all(fd, lines);
        }
        legit_start("20 clients that never read");
        rss_bounded("20 clients that never read");
        EXPECT_GE(count_log("does not read its replies"), 1);
        EXPECT_THAT(count_log("refused line"), Lt(2000))
            << "3.2 million junk lines are not logged one by one";
        for (int fd : fds) {
            ::close(fd);
        }
    }

    // 2,000 idle connections from another uid at helperd's 1024-descriptor limit.
    {
        int report[2];
        int hold[2];
        ASSERT_EQ(::pipe(report), 0);
        ASSERT_EQ(::pipe(hold), 0);
        pid_t child = idle_connections(helperd_socket_, 2000, report[1], hold[0], hold[1]);
        ASSERT_GT(child, 0);
        int opened = -1;
        ASSERT_EQ(::read(report[0], &opened, sizeof(opened)), static_cast<ssize_t>(sizeof(opened)));
        EXPECT_EQ(opened, 2000);
        legit_start("2,000 idle connections");
        rss_bounded("2,000 idle connections");
        EXPECT_GE(count_log("connection limit max_connections_per_uid=256"), 1);
        EXPECT_THAT(count_log("accept:"), Lt(100)) << "no accept loop";
        ::close(hold[1]);
        int status = 0;
        ::waitpid(child, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
        for (int fd : {report[0], report[1], hold[0]}) {
            ::close(fd);
        }
    }

    // A slowloris: a half line, one more byte now and then.
    {
        auto slow = connect();
        slow->send_raw("START legit 99 ondemand-it");
        legit_start("a slowloris");
        slow->send_raw("-");
        EXPECT_TRUE(slow->wait_closed(20s));
    }

    // A 1.5 MB line, and binary junk.
    {
        int fd = raw_connect(helperd_socket_);
        ASSERT_GE(fd, 0);
        send_all(fd, std::string(1536 * 1024, 'A'));
        ::close(fd);
        std::mt19937 random(12);
        std::string junk(256 * 1024, '\0');
        for (char& ch : junk) {
            ch = static_cast<char>(random());
        }
        fd = raw_connect(helperd_socket_);
        ASSERT_GE(fd, 0);
        send_all(fd, junk);
        ::close(fd);
        legit_start("a 1.5 MB line and binary junk");
        rss_bounded("a 1.5 MB line and binary junk");
    }
    EXPECT_EQ(count_log("StartUnit " + unit), 1) << "the legit app stayed up throughout";
}

// A client may keep only max_waits_per_client requests waiting; answered ones free their slot.
TEST_F(HelperdTest, WaitingRequestsPerClientAreCapped) {
    std::string unit = testapp_unit("capped", "");
    start_helperd({"--max-waits-per-client", "2"});
    auto c = connect();
    c->send("WAIT first 1"); // no START for it: it waits (up to a minute)
    c->send(start_line("capped", 1, unit));
    EXPECT_EQ(c->read_line(30s), "READY capped 1");
    c->send(start_line("capped", 2, unit));
    EXPECT_EQ(c->read_line(), "READY capped 2") << "an answered request no longer counts";
    c->send("WAIT second 1");
    c->send("WAIT third 1");
    EXPECT_EQ(c->read_line(), "FAILED third 1 other wait limit: max_waits_per_client=2");
    auto other = connect();
    other->send(start_line("capped", 3, unit));
    EXPECT_EQ(other->read_line(), "READY capped 3") << "the cap is per client";
    EXPECT_EQ(count_log("WAIT third refused: wait limit: max_waits_per_client=2"), 1);
}

// One client's junk is logged a few lines at a time, not once per line: a peer cannot flood
// the journal. What was held back is counted when the client leaves.
TEST_F(HelperdTest, RefusedLinesAreLoggedAtABoundedRate) {
    start_helperd();
    auto junk = connect();
    std::string lines;
    for (int i = 0; i < 5000; ++i) {
        lines += "READY x 1\n";
    }
    junk->send_raw(lines + "STATUS\n");
    std::optional<std::string> line;
    int errors = 0;
    while ((line = junk->read_line()) && *line != "END") {
        ++errors;
    }
    EXPECT_EQ(errors, 5000) << "every junk line is still answered ERROR";
    EXPECT_LE(count_log("refused line"), 10);
    junk.reset();
    auto probe = connect(); // the disconnect is logged before this one's STATUS is answered
    for (int i = 0; i < 100 && count_log("similar lines not logged") == 0; ++i) {
        probe->send("STATUS");
        EXPECT_EQ(probe->read_line(), "END");
    }
    EXPECT_THAT(helperd_log(), HasSubstr("disconnected (4990 similar lines not logged)"));
}

// STATUS with 10,000 apps: every app, in name order, then END, written a page at a time:
// clients that ask and never read cost helperd one page each, not the whole answer.
TEST_F(HelperdTest, StatusListsTenThousandAppsAPageAtATime) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "RSS bounds are not meaningful under AddressSanitizer";
#endif
    std::signal(SIGPIPE, SIG_IGN);
    start_helperd({"--max-apps", "20000"});
    constexpr int apps = 10000;
    {
        // Units that do not exist: StartUnit fails at once, and the app is listed as failed.
        auto c = connect();
        for (int batch = 0; batch < apps / 1000; ++batch) {
            std::string lines;
            for (int i = batch * 1000; i < (batch + 1) * 1000; ++i) {
                std::string n = std::to_string(i);
                std::string app = "app" + std::string(5 - n.size(), '0') + n;
                lines += start_line(app, 1, "ondemand-it-none-" + app + ".service") + "\n";
            }
            c->send_raw(lines);
            for (int i = 0; i < 1000; ++i) {
                auto answer = c->read_line(30s);
                ASSERT_TRUE(answer && answer->starts_with("FAILED app")) << answer.value_or("");
            }
        }
    }
    long before = vm_rss_kb(helperd_pid_);
    std::vector<int> silent;
    for (int k = 0; k < 20; ++k) {
        int fd = raw_connect(helperd_socket_);
        ASSERT_GE(fd, 0);
        send_all(fd, "STATUS\n");
        silent.push_back(fd);
    }
    auto c = connect();
    c->send("STATUS");
    int listed = 0;
    std::string previous;
    std::optional<std::string> line;
    while ((line = c->read_line(30s)) && *line != "END") {
        ASSERT_TRUE(line->starts_with("APP app")) << *line;
        std::string name = line->substr(4, line->find(' ', 4) - 4);
        EXPECT_LT(previous, name) << "in name order, each once";
        previous = name;
        ++listed;
    }
    EXPECT_EQ(line, "END");
    EXPECT_EQ(listed, apps);
    long after = vm_rss_kb(helperd_pid_);
    std::printf("helperd VmRSS with 10,000 apps: %ld kB; with 20 unread STATUS: %ld kB\n", before,
                after);
    EXPECT_THAT(after - before, Lt(8 * 1024))
        << "20 unread STATUS answers of ~1 MB each are not queued whole";
    EXPECT_EQ(count_log("does not read its replies"), 0);
    for (int fd : silent) {
        ::close(fd);
    }
}
