// helperd's shared inotify instance and the readiness probes on it: watches are shared and
// counted, a probe's success or cancellation only removes its watch, a removed directory ends
// the watch, and a probe on a socket in a directory that appears later still sees it.
#include "inotify_hub.h"
#include "readiness.h"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

using ondemand::helperd::inotify_hub;
using ondemand::helperd::readiness_probe;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

class InotifyHub : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "od-hub-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        dir = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    void run_for(std::chrono::milliseconds d) {
        io.restart();
        io.run_for(d);
    }
    // A listening unix socket at `path`; returns its fd.
    static int listen_at(const std::string& path) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
        EXPECT_EQ(::listen(fd, 8), 0);
        return fd;
    }

    boost::asio::io_context io;
    std::shared_ptr<inotify_hub> hub = inotify_hub::create(io);
    fs::path dir;
};

TEST_F(InotifyHub, SubscribersShareOneWatchPerDirectory) {
    std::string error;
    int a_events = 0;
    int b_events = 0;
    auto a = hub->watch(
        dir.string(), [&] { ++a_events; }, error);
    auto b = hub->watch(
        dir.string(), [&] { ++b_events; }, error);
    ASSERT_TRUE(a.active()) << error;
    ASSERT_TRUE(b.active()) << error;
    EXPECT_EQ(hub->watch_count(), 1u);
    EXPECT_EQ(hub->subscriber_count(), 2u);

    fs::create_directory(dir / "x");
    run_for(50ms);
    EXPECT_EQ(a_events, 1);
    EXPECT_EQ(b_events, 1);

    a.reset();
    EXPECT_EQ(hub->watch_count(), 1u) << "b still watches";
    fs::create_directory(dir / "y");
    run_for(50ms);
    EXPECT_EQ(a_events, 1);
    EXPECT_EQ(b_events, 2);

    b.reset();
    EXPECT_EQ(hub->watch_count(), 0u);
    EXPECT_EQ(hub->subscriber_count(), 0u);
}

TEST_F(InotifyHub, RemovedDirectoryEndsTheWatch) {
    fs::create_directory(dir / "sub");
    std::string error;
    int events = 0;
    auto s = hub->watch((dir / "sub").string(), [&] { ++events; }, error);
    ASSERT_TRUE(s.active()) << error;
    fs::remove(dir / "sub");
    run_for(50ms);
    EXPECT_GE(events, 1);
    EXPECT_FALSE(s.active());
    EXPECT_EQ(hub->watch_count(), 0u);
}

TEST_F(InotifyHub, WatchOfAMissingDirectoryFails) {
    std::string error;
    auto s = hub->watch((dir / "nope").string(), [] {}, error);
    EXPECT_FALSE(s.active());
    EXPECT_NE(error.find("inotify_add_watch"), std::string::npos) << error;
}

TEST_F(InotifyHub, ProbeSeesASocketInADirectoryCreatedLater) {
    std::string sock = (dir / "apps" / "blog" / "app.sock").string();
    int ready = 0;
    auto probe = readiness_probe::create(io, hub, sock, {}, [&] { ++ready; });
    probe->start();
    run_for(20ms);
    EXPECT_EQ(ready, 0);
    EXPECT_EQ(hub->watch_count(), 1u);
    fs::create_directories(dir / "apps" / "blog");
    run_for(20ms);
    int fd = listen_at(sock);
    run_for(50ms);
    EXPECT_EQ(ready, 1);
    EXPECT_EQ(hub->watch_count(), 0u) << "the probe's watch is removed once it is ready";
    EXPECT_EQ(hub->subscriber_count(), 0u);
    ::close(fd);
}

TEST_F(InotifyHub, ProbesOnOneDirectoryAndAStoppedProbe) {
    std::string one = (dir / "one.sock").string();
    std::string two = (dir / "two.sock").string();
    int ready_one = 0;
    int ready_two = 0;
    auto p1 = readiness_probe::create(io, hub, one, {}, [&] { ++ready_one; });
    auto p2 = readiness_probe::create(io, hub, two, {}, [&] { ++ready_two; });
    p1->start();
    p2->start();
    EXPECT_EQ(hub->watch_count(), 1u);
    EXPECT_EQ(hub->subscriber_count(), 2u);
    p2->stop();
    EXPECT_EQ(hub->subscriber_count(), 1u);
    int fd1 = listen_at(one);
    int fd2 = listen_at(two);
    run_for(50ms);
    EXPECT_EQ(ready_one, 1);
    EXPECT_EQ(ready_two, 0) << "a stopped probe never calls on_ready";
    EXPECT_EQ(hub->watch_count(), 0u);
    ::close(fd1);
    ::close(fd2);
}

} // namespace
