// helperd's per-app event ring (STATUS' `events=`), the STATUS detail fields, and what the app
// driver records in them.
#include "app_driver.h"
#include "app_events.h"
#include "log.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace ondemand::helperd;
namespace proto = ondemand::proto;
using namespace std::chrono_literals;

std::chrono::system_clock::time_point at_ms(std::uint64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

TEST(AppEvents, EmptyRingHasNoEventsAndNoAttr) {
    app_events ev;
    EXPECT_TRUE(ev.recent().empty());
    EXPECT_EQ(ev.to_attr(), "");
}

TEST(AppEvents, KeepsEventsOldestFirstWithTheirTimesAndFailureCode) {
    app_events ev;
    ev.record(app_event_kind::start, at_ms(1000));
    ev.record(app_event_kind::failed, at_ms(1500), proto::failure::timeout);
    ev.record(app_event_kind::start, at_ms(2000));
    ASSERT_EQ(ev.recent().size(), 3u);
    EXPECT_EQ(ev.recent()[1], (app_event{app_event_kind::failed, 1500, proto::failure::timeout}));
    EXPECT_EQ(ev.to_attr(), "start@1000,failed:timeout@1500,start@2000");
}

TEST(AppEvents, TheSixthEventPushesTheOldestOut) {
    app_events ev;
    const app_event_kind kinds[] = {app_event_kind::start,  app_event_kind::ready,
                                    app_event_kind::stop,   app_event_kind::stopped,
                                    app_event_kind::freeze, app_event_kind::down,
                                    app_event_kind::start};
    std::uint64_t t = 100;
    for (app_event_kind k : kinds) {
        ev.record(k, at_ms(t++));
    }
    ASSERT_EQ(ev.recent().size(), app_events::capacity);
    EXPECT_EQ(ev.to_attr(), "stop@102,stopped@103,freeze@104,down@105,start@106");
}

TEST(AppEvents, TheCodeIsKeptOnlyForFailures) {
    app_events ev;
    ev.record(app_event_kind::ready, at_ms(5), proto::failure::timeout);
    EXPECT_EQ(ev.recent()[0].code, proto::failure::other);
    EXPECT_EQ(ev.to_attr(), "ready@5");
}

TEST(AppEvents, TheAttrIsAValidStatusField) {
    app_events ev;
    for (int i = 0; i < 5; ++i) {
        ev.record(app_event_kind::failed, at_ms(1795332776040ULL + i),
                  proto::failure::systemd_refused);
    }
    std::string attrs = "events=" + ev.to_attr();
    EXPECT_TRUE(proto::valid_attrs(attrs)) << attrs;
}

TEST(AppEvents, PercentEncodingLeavesNoSpaceAndCuts) {
    EXPECT_EQ(percent_encode("start job failed: 100% done", 100),
              "start%20job%20failed:%20100%25%20done");
    EXPECT_EQ(percent_encode("abc def", 4), "abc%20");
    EXPECT_EQ(percent_encode("", 10), "");
}

TEST(StatusDetails, NothingForAnAppThatNeverFailedOrMoved) {
    app_status a;
    std::string attrs = "since=1 last=0 starts=0 failures=0";
    append_status_details(attrs, a);
    EXPECT_EQ(attrs, "since=1 last=0 starts=0 failures=0");
}

TEST(StatusDetails, LastFailureItsDetailAndEventsParseBack) {
    app_status a;
    a.last_failure =
        failure_reason{proto::failure::unit_failed, "start job failed: result exit-code"};
    a.events.record(app_event_kind::start, at_ms(10));
    a.events.record(app_event_kind::failed, at_ms(20), proto::failure::unit_failed);
    std::string attrs = "since=1 last=0 starts=1 failures=1";
    append_status_details(attrs, a);
    ASSERT_TRUE(proto::valid_attrs(attrs)) << attrs;
    std::string_view v;
    ASSERT_TRUE(proto::find_attr(attrs, "last_failure", v));
    EXPECT_EQ(v, "unit-failed");
    ASSERT_TRUE(proto::find_attr(attrs, "last_failure_detail", v));
    EXPECT_EQ(v, "start%20job%20failed:%20result%20exit-code");
    ASSERT_TRUE(proto::find_attr(attrs, "events", v));
    EXPECT_EQ(v, "start@10,failed:unit-failed@20");
}

// The driver records what happens: start, ready, stop, stopped; a failed start keeps its reason
// after a later success.
TEST(AppDriverEvents, AStartFailureThenReadyThenStopAreRecorded) {
    struct units_t final : unit_manager {
        std::vector<job_handler> starts;
        std::vector<stop_handler> stops;
        void start_unit(const std::string&, job_handler done) override {
            starts.push_back(std::move(done));
        }
        void stop_unit(const std::string&, const stop_handler& done) override {
            stops.push_back(done);
        }
        void freeze_unit(const std::string&, const done_handler&) override {}
        void thaw_unit(const std::string&, const done_handler&) override {}
        void read_unit_state(const std::string&, const state_handler&) override {}
    } units;
    struct replies_t final : reply_sink {
        void answer(const std::vector<waiter>&, proto::verb, std::string_view) override {}
        void answer_failed(const std::vector<waiter>&, std::string_view,
                           const failure_reason&) override {}
        void broadcast(proto::verb, std::string_view, const std::vector<waiter>&) override {}
    } replies;
    set_log_level(log_level::error);
    boost::asio::io_context io;
    app_driver driver(io, units, replies);
    const std::string unit = "ondemand-exec@blog.service";
    start_params p{unit, "notify", 30s, "/run/ondemand/apps/blog/app.sock"};
    driver.start({1, 1}, "blog", p);
    units.starts.back()("", "Unit not found.");
    driver.start({1, 2}, "blog", p);
    units.starts.back()("/job/2", "");
    units.on_job_removed("/job/2", unit, "done");
    driver.stop({1, 3}, "blog", unit);
    units.stops.back()("/job/3", "", false);
    units.on_job_removed("/job/3", unit, "done");

    std::vector<app_status> st = driver.status("", 100);
    ASSERT_EQ(st.size(), 1u);
    ASSERT_TRUE(st[0].last_failure);
    EXPECT_EQ(st[0].last_failure->code, proto::failure::systemd_refused);
    EXPECT_EQ(st[0].last_failure->detail, "StartUnit: Unit not found.");
    std::vector<app_event_kind> kinds;
    for (const app_event& e : st[0].events.recent()) {
        kinds.push_back(e.kind);
    }
    EXPECT_EQ(kinds, (std::vector<app_event_kind>{app_event_kind::failed, app_event_kind::start,
                                                  app_event_kind::ready, app_event_kind::stop,
                                                  app_event_kind::stopped}));
    EXPECT_EQ(st[0].events.recent()[0].code, proto::failure::systemd_refused);
}

} // namespace
