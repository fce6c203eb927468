// helperd's STATUS against the real (sandboxed) systemd user manager (issue #13): `last` counts
// requests only (an idle STOP does not move it), and `last_failure=` / `events=` tell what
// happened to the app.
#include "helperd_fixture.h"
#include "ondemand_protocol.h"

#include <gmock/gmock.h>

#include <chrono>
#include <string>
#include <thread>

namespace ondemand::testing {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

namespace {

std::string attr(const std::string& app_line, std::string_view key) {
    auto parsed = proto::parse(app_line);
    std::string_view v;
    if (!parsed.ok || !proto::find_attr(parsed.msg.attrs, key, v)) {
        return "<none>";
    }
    return std::string(v);
}

long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

TEST_F(HelperdTest, StatusLastCountsRequestsNotStopsAndListsTheEvents) {
    std::string unit = testapp_unit("evts", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("evts", 1, unit));
    ASSERT_EQ(c->read_line(), "READY evts 1");
    std::this_thread::sleep_for(50ms);
    long long before_stop = now_ms();
    c->send("STOP evts 1 " + unit);
    ASSERT_EQ(c->read_line(), "STOPPED evts 1");
    c->send("STATUS");
    std::string line = c->read_line().value_or("");
    EXPECT_EQ(c->read_line(), "END");
    ASSERT_TRUE(proto::parse(line).ok) << line;
    long long last = std::stoll(attr(line, "last"));
    EXPECT_GT(last, 0);
    EXPECT_LT(last, before_stop) << "the STOP is not a request: last is still the START's";
    EXPECT_EQ(attr(line, "last_failure"), "<none>") << line;
    EXPECT_THAT(attr(line, "events"),
                MatchesRegex("start@[0-9]+,ready@[0-9]+,stop@[0-9]+,stopped@[0-9]+"))
        << line;
}

TEST_F(HelperdTest, StatusKeepsTheLastFailureAfterALaterSuccess) {
    std::string unit = testapp_unit("lastfail", "");
    std::string missing = unit.substr(0, unit.size() - 8) + "-missing.service";
    start_helperd();
    auto c = connect();
    c->send(start_line("lastfail", 1, missing));
    std::string failed = c->read_line().value_or("");
    ASSERT_THAT(failed, ::testing::StartsWith("FAILED lastfail 1 "));
    std::string code = failed.substr(std::string("FAILED lastfail 1 ").size());
    code = code.substr(0, code.find(' '));
    c->send(start_line("lastfail", 2, unit));
    ASSERT_EQ(c->read_line(), "READY lastfail 2");
    c->send("STATUS");
    std::string line = c->read_line().value_or("");
    EXPECT_EQ(c->read_line(), "END");
    EXPECT_EQ(attr(line, "last_failure"), code) << line;
    EXPECT_NE(attr(line, "last_failure_detail"), "<none>") << line;
    EXPECT_THAT(attr(line, "events"),
                MatchesRegex("start@[0-9]+,failed:" + code + "@[0-9]+,start@[0-9]+,ready@[0-9]+"))
        << line;
    EXPECT_THAT(line, HasSubstr(" starts=2 failures=1"));
}

} // namespace ondemand::testing
