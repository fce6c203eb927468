// helperd's authentication (issue #12) against the real helperd and systemd: with --key-file,
// a connection's first line must be HELLO with the key, else ERROR and close; a wrong-key flood
// does not disturb a keyed client; SIGHUP re-reads the key; and an instance name held by one
// process cannot be taken by a HELLO from another (with or without a key).
#include "helperd_fixture.h"
#include "ondemand_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ondemand::testing {

using ::testing::HasSubstr;
using ::testing::Not;

namespace {

const std::string good_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string bad_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee";

sockaddr_un address_of(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

// Everything the peer sends until it closes (or `limit` passes).
std::string read_until_closed(int fd, std::chrono::milliseconds limit = 10s) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return out + "<still open>";
        }
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        char buf[512];
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) {
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

// In a child process (another parent than the test's): connects, sends `lines`, and returns
// what helperd answered until it closed the connection, through a pipe.
std::string from_child(const std::string& socket, const std::string& lines) {
    int p[2];
    if (::pipe(p) != 0) {
        return "<pipe failed>";
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr = address_of(socket);
        std::string out = "<connect failed>";
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 &&
            ::send(fd, lines.data(), lines.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(lines.size())) {
            out = read_until_closed(fd, 3s);
        }
        (void)!::write(p[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string out;
    char buf[512];
    ssize_t n = 0;
    while ((n = ::read(p[0], buf, sizeof(buf))) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
}

} // namespace

TEST_F(HelperdTest, KeyRequiredNoHelloIsRefusedAndClosed) {
    std::string unit = testapp_unit("nohello", "");
    start_helperd_with_key(good_key);
    auto c = connect();
    c->send(start_line("nohello", 1, unit));
    EXPECT_EQ(c->read_line(), "ERROR authentication required");
    EXPECT_TRUE(c->wait_closed());

    auto h = connect();
    h->send("HELLO nginx-1");
    EXPECT_EQ(h->read_line(), "ERROR authentication required") << "a HELLO without key=";
    EXPECT_TRUE(h->wait_closed());

    auto s = connect();
    s->send("STATUS");
    EXPECT_EQ(s->read_line(), "ERROR authentication required");
    EXPECT_TRUE(s->wait_closed());

    auto junk = connect();
    junk->send("HELLO");
    EXPECT_EQ(junk->read_line(), "ERROR authentication required") << "a line that does not parse";
    EXPECT_TRUE(junk->wait_closed());

    EXPECT_EQ(count_log("StartUnit " + unit), 0);
    EXPECT_EQ(active_state(unit), "inactive");
    EXPECT_THAT(helperd_log(), HasSubstr("refused and closed: authentication required"));
    EXPECT_THAT(helperd_log(), HasSubstr("(pid " + std::to_string(::getpid()) + " uid 0)"));
}

TEST_F(HelperdTest, KeyRequiredWrongKeyIsRefusedAndClosed) {
    std::string unit = testapp_unit("wrongkey", "");
    start_helperd_with_key(good_key, {"--log-level", "debug"});
    auto good = connect();
    good->send("HELLO nginx-0 key=" + good_key);
    good->send("STATUS");
    EXPECT_EQ(good->read_line(), "END");
    for (const std::string& key : {bad_key, good_key.substr(0, 63), good_key + "0",
                                   std::string(proto::min_key_length, 'x')}) {
        SCOPED_TRACE(key);
        auto c = connect();
        c->send("HELLO nginx-1 key=" + key + "\n" + start_line("wrongkey", 1, unit));
        EXPECT_EQ(c->read_line(), "ERROR wrong key");
        EXPECT_TRUE(c->wait_closed()) << "nothing after the refused HELLO is served";
    }
    EXPECT_EQ(count_log("refused and closed: wrong key"), 4);
    EXPECT_EQ(count_log("StartUnit " + unit), 0);
    EXPECT_THAT(helperd_log(), Not(HasSubstr(good_key.substr(0, 40)))) << "the key is never logged";
    EXPECT_THAT(helperd_log(), Not(HasSubstr(bad_key.substr(0, 40)))) << "nor a wrong one";
    EXPECT_THAT(helperd_log(), HasSubstr("HELLO nginx-0 key=(hidden)"));
}

TEST_F(HelperdTest, KeyRequiredRightKeyStartsAndStops) {
    std::string unit = testapp_unit("rightkey", "--delay-ms 50");
    start_helperd_with_key(good_key);
    auto c = connect();
    c->send("HELLO nginx-1 key=" + good_key);
    c->send(start_line("rightkey", 1, unit));
    EXPECT_EQ(c->read_line(), "READY rightkey 1");
    EXPECT_EQ(active_state(unit), "active");
    auto other = connect();
    other->send("HELLO nginx-1 key=" + good_key);
    auto idle = connect(); // connected, not authenticated: it must learn nothing
    c->send("STOP rightkey 2 " + unit);
    EXPECT_EQ(c->read_line(), "STOPPED rightkey 2");
    EXPECT_EQ(other->read_line(), "DOWN rightkey");
    EXPECT_EQ(idle->read_line(300ms), std::nullopt) << "no DOWN before authentication";
    c->send("HELLO nginx-1 key=" + good_key);
    EXPECT_EQ(c->read_line(), "ERROR HELLO sent twice") << "the connection stays open";
    EXPECT_THAT(helperd_log(), HasSubstr("belongs to instance nginx-1 (key checked)"));
}

TEST_F(HelperdTest, KeylessHelperdAcceptsAHelloWithAKey) {
    std::string unit = testapp_unit("keyless", "");
    start_helperd();
    auto c = connect();
    c->send("HELLO nginx-1 key=" + good_key);
    c->send(start_line("keyless", 1, unit));
    EXPECT_EQ(c->read_line(), "READY keyless 1");
    auto old = connect();
    old->send(start_line("keyless", 2, unit));
    EXPECT_EQ(old->read_line(), "READY keyless 2") << "without a key, HELLO stays optional";
}

TEST_F(HelperdTest, WrongKeyFloodDoesNotDisturbAKeyedClient) {
    std::string unit = testapp_unit("flood", "--delay-ms 200");
    start_helperd_with_key(good_key);
    auto keyed = connect();
    keyed->send("HELLO nginx-1 key=" + good_key);

    std::atomic<bool> stop{false};
    std::atomic<int> refused{0};
    std::atomic<int> other{0};
    std::mutex other_mutex;
    std::string other_lines;
    std::vector<std::thread> flooders;
    for (int t = 0; t < 4; ++t) {
        flooders.emplace_back([&] {
            while (!stop) {
                line_client bad(helperd_socket_);
                if (!bad.connected()) {
                    // A full listen backlog (EAGAIN on a unix socket): not helperd's answer.
                    std::this_thread::sleep_for(1ms);
                    continue;
                }
                bad.send("HELLO nginx-1 key=" + bad_key);
                auto line = bad.read_line(5s);
                if (line == "ERROR wrong key") {
                    ++refused;
                } else {
                    ++other;
                    std::lock_guard<std::mutex> lock(other_mutex);
                    other_lines += (line ? *line : std::string("<none>")) + "\n";
                }
            }
        });
    }
    for (std::uint64_t gen = 1; gen <= 3; ++gen) {
        keyed->send(start_line("flood", gen, unit));
        EXPECT_EQ(keyed->read_line(), "READY flood " + std::to_string(gen));
        keyed->send("STOP flood " + std::to_string(gen) + " " + unit);
        EXPECT_EQ(keyed->read_line(), "STOPPED flood " + std::to_string(gen));
    }
    // A new keyed client gets in while the flood goes on.
    auto fresh = connect();
    fresh->send("HELLO nginx-2 key=" + good_key);
    fresh->send(start_line("flood", 9, unit));
    EXPECT_EQ(fresh->read_line(), "READY flood 9");
    stop = true;
    for (auto& t : flooders) {
        t.join();
    }
    EXPECT_GT(refused.load(), 20) << "the flood ran";
    EXPECT_EQ(other.load(), 0) << "every wrong key got ERROR wrong key; others:\n" << other_lines;
    EXPECT_EQ(count_log("StartUnit " + unit), 4);
}

TEST_F(HelperdTest, SighupRereadsTheKeyFile) {
    std::string unit = testapp_unit("rekey", "");
    std::string new_key(64, 'b');
    start_helperd_with_key(good_key);
    auto before = connect();
    before->send("HELLO nginx-1 key=" + good_key);
    write_key_file(new_key);
    ASSERT_EQ(::kill(helperd_pid_, SIGHUP), 0);
    ASSERT_TRUE(wait_notification("RELOADING=1"));
    ASSERT_TRUE(wait_notification("READY=1"));

    auto old_key = connect();
    old_key->send("HELLO nginx-1 key=" + good_key);
    EXPECT_EQ(old_key->read_line(), "ERROR wrong key");
    auto fresh = connect();
    fresh->send("HELLO nginx-1 key=" + new_key);
    fresh->send(start_line("rekey", 1, unit));
    EXPECT_EQ(fresh->read_line(), "READY rekey 1");
    before->send(start_line("rekey", 2, unit));
    EXPECT_EQ(before->read_line(), "READY rekey 2") << "an authenticated connection stays";

    // A broken key file on SIGHUP keeps the key in force.
    write_key_file("short");
    ASSERT_EQ(::kill(helperd_pid_, SIGHUP), 0);
    ASSERT_TRUE(wait_notification("RELOADING=1"));
    ASSERT_TRUE(wait_notification("READY=1"));
    EXPECT_EQ(count_log("reload failed"), 1) << helperd_log();
    EXPECT_THAT(helperd_log(), HasSubstr("holds a key shorter than 16 bytes"));
    auto still = connect();
    still->send("HELLO nginx-3 key=" + new_key);
    still->send(start_line("rekey", 3, unit));
    EXPECT_EQ(still->read_line(), "READY rekey 3");
}

TEST_F(HelperdTest, BadKeyFileStopsHelperdAtStart) {
    std::string path = write_key_file("");
    std::string out;
    int status = run_program({bin_dir_ + "/ondemand-helperd", "--socket", dir_ + "/x.sock",
                              "--user", "--key-file", path, "--check-config"},
                             &out, true);
    EXPECT_EQ(status, 1);
    EXPECT_THAT(out, HasSubstr("key file " + path + ": is empty"));
    status = run_program({bin_dir_ + "/ondemand-helperd", "--socket", dir_ + "/x.sock", "--user",
                          "--key-file", dir_ + "/missing.key"},
                         &out, true);
    EXPECT_EQ(status, 1);
    EXPECT_THAT(out, HasSubstr("key file " + dir_ + "/missing.key: cannot open: No such file"));
}

// A HELLO naming an instance whose connections are open, from a process with another parent
// (a forked child), is refused; the holder's own further connections are not.
TEST_F(HelperdTest, InstanceNameCannotBeTakenByAnotherProcess) {
    start_helperd();
    {
        line_client holder(helperd_socket_);
        holder.send("HELLO nginx-1");
        holder.send("STATUS");
        EXPECT_EQ(holder.read_line(), "END");

        std::string child = from_child(helperd_socket_, "HELLO nginx-1\nSTATUS\n");
        EXPECT_EQ(child, "ERROR instance name nginx-1 is in use by another process\n");
        EXPECT_EQ(from_child(helperd_socket_, "HELLO nginx-2\nSTATUS\n"), "END\n<still open>")
            << "another name is free";

        line_client sibling(helperd_socket_);
        sibling.send("HELLO nginx-1");
        sibling.send("STATUS");
        EXPECT_EQ(sibling.read_line(), "END") << "same uid and parent: a sibling worker";
        EXPECT_THAT(helperd_log(), HasSubstr("instance nginx-1 is held by uid 0 parent " +
                                             std::to_string(::getppid())));
    }
    // Once every connection of nginx-1 is closed, the name is free again.
    std::string child;
    for (int i = 0; i < 50; ++i) {
        child = from_child(helperd_socket_, "HELLO nginx-1\nSTATUS\n");
        if (child == "END\n<still open>") {
            break;
        }
        std::this_thread::sleep_for(20ms); // helperd sees the close asynchronously
    }
    EXPECT_EQ(child, "END\n<still open>");
}

TEST_F(HelperdTest, InstanceNameCannotBeTakenWithTheRightKeyEither) {
    start_helperd_with_key(good_key);
    line_client holder(helperd_socket_);
    holder.send("HELLO nginx-1 key=" + good_key);
    holder.send("STATUS");
    EXPECT_EQ(holder.read_line(), "END");
    EXPECT_EQ(from_child(helperd_socket_, "HELLO nginx-1 key=" + good_key + "\nSTATUS\n"),
              "ERROR instance name nginx-1 is in use by another process\n");
}

TEST_F(HelperdTest, HelloFromAPeerThatHasExitedIsRefused) {
    start_helperd();
    // The child connects (SO_PEERCRED names it) and exits; the parent then sends the HELLO on
    // the shared descriptor.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        sockaddr_un addr = address_of(helperd_socket_);
        ::_exit(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::string hello = "HELLO nginx-1\n";
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(hello.size()));
    EXPECT_EQ(read_until_closed(fd), "ERROR cannot check the peer process " + std::to_string(pid) +
                                         ": the process has exited\n");
    ::close(fd);
}

} // namespace ondemand::testing
