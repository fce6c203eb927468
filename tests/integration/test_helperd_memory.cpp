// helperd's memory figures against the real (sandboxed) systemd user manager (issue #15): after
// SUBSCRIBE memory, a running app's MEMORY lines carry what its unit really uses (here the
// fallback: the Pss of the unit's processes, found through the main process's cgroup, since the
// sandbox's cgroup2 has no memory controller), and a stopped app gets none.
#include "helperd_fixture.h"
#include "ondemand_protocol.h"

#include <gmock/gmock.h>

#include <string>

namespace ondemand::testing {

namespace {

constexpr std::uint64_t mib = 1024 * 1024;

// The next MEMORY line for `app`, skipping other lines; 0 if none comes within `limit`.
std::uint64_t next_memory(line_client& c, const std::string& app,
                          std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        auto line = c.read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now()));
        if (!line) {
            return 0;
        }
        auto r = proto::parse(*line);
        if (r.ok && r.msg.kind == proto::verb::memory && r.msg.app == app) {
            return r.msg.memory_bytes;
        }
    }
    return 0;
}

} // namespace

TEST_F(HelperdTest, SubscribersGetTheMemoryOfRunningApps) {
    std::string big = testapp_unit("membig", "--alloc-mib 40");
    std::string small = testapp_unit("memsmall", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("membig", 1, big));
    ASSERT_EQ(c->read_line(), "READY membig 1");
    c->send(start_line("memsmall", 1, small));
    ASSERT_EQ(c->read_line(), "READY memsmall 1");

    auto quiet = connect(); // not subscribed: no MEMORY lines
    c->send("SUBSCRIBE memory");
    std::uint64_t bytes = next_memory(*c, "membig");
    EXPECT_GE(bytes, 40 * mib) << "the 40 MiB the app touched";
    EXPECT_LT(bytes, 56 * mib) << "and not much more: the app's own memory";
    std::uint64_t few = next_memory(*c, "memsmall");
    EXPECT_GT(few, 0u);
    EXPECT_LT(few, 16 * mib);

    c->send("STOP membig 1 " + big);
    std::string line;
    while (line.rfind("MEMORY ", 0) == 0 || line.empty()) {
        auto l = c->read_line(10s);
        ASSERT_TRUE(l.has_value()) << "no STOPPED";
        line = *l;
    }
    ASSERT_EQ(line, "STOPPED membig 1");
    // From then on, only memsmall reports.
    for (int i = 0; i < 3; i++) {
        std::string next = c->read_line(2s).value_or("");
        EXPECT_THAT(next, ::testing::Not(::testing::HasSubstr("membig"))) << next;
    }
    quiet->send("STATUS");
    for (std::string q = quiet->read_line().value_or("END"); q != "END";
         q = quiet->read_line().value_or("END")) {
        EXPECT_THAT(q, ::testing::Not(::testing::StartsWith("MEMORY "))) << "not subscribed";
    }
}

} // namespace ondemand::testing
