// helperd's app_driver against a fake service manager: which unit calls a request makes, and
// what the clients are answered when the calls and signals come back.
#include "app_driver.h"
#include "log.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace ondemand::helperd;
namespace proto = ondemand::proto;
using namespace std::chrono_literals;

// Records every call; the test answers them by hand.
class fake_units final : public unit_manager {
  public:
    std::vector<std::string> calls; // "StartUnit u", ...
    std::vector<job_handler> starts;
    std::vector<stop_handler> stops;
    std::vector<done_handler> freezes;
    std::vector<done_handler> thaws;
    std::vector<state_handler> reads;

    void start_unit(const std::string& unit, job_handler done) override {
        calls.push_back("StartUnit " + unit);
        starts.push_back(std::move(done));
    }
    void stop_unit(const std::string& unit, const stop_handler& done) override {
        calls.push_back("StopUnit " + unit);
        stops.push_back(done);
    }
    void freeze_unit(const std::string& unit, const done_handler& done) override {
        calls.push_back("FreezeUnit " + unit);
        freezes.push_back(done);
    }
    void thaw_unit(const std::string& unit, const done_handler& done) override {
        calls.push_back("ThawUnit " + unit);
        thaws.push_back(done);
    }
    void read_unit_state(const std::string& unit, const state_handler& done) override {
        calls.push_back("GetAll " + unit);
        reads.push_back(done);
    }
};

// Records every answer as "client: line".
class recorded_replies final : public reply_sink {
  public:
    std::vector<std::string> lines;
    std::vector<client_id> clients{1, 2, 3};

    void answer(const std::vector<waiter>& waiters, proto::verb verb,
                std::string_view app) override {
        for (const waiter& w : waiters) {
            lines.push_back(std::to_string(w.client) + ": " + std::string(proto::verb_name(verb)) +
                            " " + std::string(app) + " " + std::to_string(w.gen));
        }
    }
    void answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                       const failure_reason& why) override {
        for (const waiter& w : waiters) {
            lines.push_back(std::to_string(w.client) + ": FAILED " + std::string(app) + " " +
                            std::to_string(w.gen) + " " +
                            std::string(proto::failure_name(why.code)) +
                            (why.detail.empty() ? "" : " " + why.detail));
        }
    }
    void broadcast(proto::verb verb, std::string_view app,
                   const std::vector<waiter>& except) override {
        for (client_id c : clients) {
            bool skipped = false;
            for (const waiter& w : except) {
                skipped = skipped || w.client == c;
            }
            if (!skipped) {
                lines.push_back(std::to_string(c) + ": " + std::string(proto::verb_name(verb)) +
                                " " + std::string(app));
            }
        }
    }
};

constexpr const char* unit = "ondemand-exec@blog.service";

class AppDriver : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { set_log_level(log_level::error); }

    start_params notify_start(std::chrono::milliseconds timeout = 30s) {
        return {unit, "notify", timeout, "/run/ondemand/apps/blog/app.sock"};
    }
    // START blog from `client`, StartUnit answered with a job, the job done: READY.
    void make_ready() {
        driver->start({1, 7}, "blog", notify_start());
        units.starts.back()("/job/1", "");
        units.on_job_removed("/job/1", unit, "done");
    }

    boost::asio::io_context io;
    fake_units units;
    recorded_replies replies;
    std::unique_ptr<app_driver> driver = std::make_unique<app_driver>(io, units, replies);
};

TEST_F(AppDriver, AHerdOfStartsMakesOneStartUnitAndEveryoneHearsReady) {
    driver->start({1, 7}, "blog", notify_start());
    driver->start({2, 7}, "blog", notify_start());
    driver->wait({3, 7}, "blog");
    ASSERT_EQ(units.calls, std::vector<std::string>{"StartUnit ondemand-exec@blog.service"});
    units.starts[0]("/job/1", "");
    EXPECT_TRUE(replies.lines.empty());
    units.on_job_removed("/job/1", unit, "done");
    EXPECT_EQ(replies.lines,
              (std::vector<std::string>{"1: READY blog 7", "2: READY blog 7", "3: READY blog 7"}));
    EXPECT_EQ(driver->count(app_phase::ready), 1u);
}

TEST_F(AppDriver, AFailedStartJobIsAnsweredWithTheUnitsResult) {
    driver->start({1, 7}, "blog", notify_start());
    units.starts[0]("/job/1", "");
    units.on_job_removed("/job/1", unit, "failed");
    ASSERT_EQ(units.reads.size(), 1u) << "the unit's state is read to explain the failure";
    unit_state st;
    st.result = "exit-code";
    st.exec_main_code = CLD_EXITED;
    st.exec_main_status = 3;
    units.reads[0](st, "");
    EXPECT_EQ(replies.lines,
              std::vector<std::string>{"1: FAILED blog 7 unit-failed start job failed: result "
                                       "exit-code, main process exited with status 3"});
    ASSERT_EQ(driver->status("", 10).size(), 1u);
    EXPECT_EQ(driver->status("", 10)[0].failures, 1u);
}

TEST_F(AppDriver, StatusIsReadAPageAtATimeInNameOrder) {
    for (const char* app : {"d", "b", "a", "c", "e"}) {
        driver->start({1, 1}, app, notify_start());
    }
    driver->wait({1, 1}, "only-waited-for"); // no unit known: not listed
    auto names = [](const std::vector<app_status>& page) {
        std::vector<std::string> out;
        for (const app_status& a : page) {
            out.push_back(a.name);
        }
        return out;
    };
    EXPECT_EQ(names(driver->status("", 2)), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(names(driver->status("b", 2)), (std::vector<std::string>{"c", "d"}));
    EXPECT_EQ(names(driver->status("d", 2)), (std::vector<std::string>{"e"}));
    EXPECT_TRUE(driver->status("e", 2).empty());
    EXPECT_EQ(names(driver->status("bb", 10)), (std::vector<std::string>{"c", "d", "e"}))
        << "a page starts after the last app sent even when that app is gone";
}

TEST_F(AppDriver, AStartUnitThatSystemdRefusesFailsAtOnce) {
    driver->start({1, 7}, "blog", notify_start());
    units.starts[0]("", "Unit ondemand-exec@blog.service not found.");
    EXPECT_EQ(replies.lines,
              std::vector<std::string>{"1: FAILED blog 7 systemd-refused StartUnit: Unit "
                                       "ondemand-exec@blog.service not found."});
}

TEST_F(AppDriver, AJobThatEndsBeforeItsStartUnitReplyStillEndsTheStart) {
    driver->start({1, 7}, "blog", notify_start());
    units.on_job_removed("/job/1", unit, "done");
    EXPECT_TRUE(replies.lines.empty());
    units.starts[0]("/job/1", "");
    EXPECT_EQ(replies.lines, std::vector<std::string>{"1: READY blog 7"});
}

TEST_F(AppDriver, AStartThatOutlivesItsTimeoutFailsWithTimeout) {
    driver->start({1, 7}, "blog", notify_start(1ms));
    units.starts[0]("/job/1", "");
    io.run_for(200ms);
    EXPECT_EQ(replies.lines,
              std::vector<std::string>{"1: FAILED blog 7 timeout the start job did not finish"});
    units.on_job_removed("/job/1", unit, "done");
    EXPECT_EQ(replies.lines.size(), 1u) << "the job of a timed-out attempt changes nothing";
}

TEST_F(AppDriver, AStopCancelsARunningStartAndItsLateReplyIsIgnored) {
    driver->start({1, 7}, "blog", notify_start());
    driver->stop({2, 7}, "blog", unit);
    EXPECT_EQ(replies.lines, std::vector<std::string>{"1: FAILED blog 7 canceled by STOP"});
    ASSERT_EQ(units.stops.size(), 1u);
    units.starts[0]("/job/1", "");
    units.on_job_removed("/job/1", unit, "done");
    EXPECT_EQ(replies.lines.size(), 1u) << "the canceled start's job is not the stop's";
    units.stops[0]("/job/2", "", false);
    units.on_job_removed("/job/2", unit, "done");
    EXPECT_EQ(replies.lines.back(), "2: STOPPED blog 7");
}

TEST_F(AppDriver, AStopOfAReadyAppTellsTheOtherClientsDownBeforeTheStopperHearsStopped) {
    make_ready();
    replies.lines.clear();
    driver->stop({3, 0}, "blog", unit);
    units.stops[0]("", "Unit ondemand-exec@blog.service not loaded.", true);
    EXPECT_EQ(replies.lines,
              (std::vector<std::string>{"1: DOWN blog", "2: DOWN blog", "3: STOPPED blog 0"}));
}

TEST_F(AppDriver, AReadyUnitThatLeavesActivePushesDownToEveryClient) {
    make_ready();
    replies.lines.clear();
    units.on_active_state(unit_object_path(unit), "active");
    EXPECT_TRUE(replies.lines.empty());
    units.on_active_state(unit_object_path(unit), "failed");
    EXPECT_EQ(replies.lines,
              (std::vector<std::string>{"1: DOWN blog", "2: DOWN blog", "3: DOWN blog"}));
    EXPECT_EQ(driver->count(app_phase::stopped), 1u);
}

TEST_F(AppDriver, AUnitThatDiesAfterItsJobButBeforeReadyFailsTheStartAtOnce) {
    driver->start({1, 7}, "blog", {unit, "connect", 30s, "/nonexistent/ondemand-test/app.sock"});
    units.starts[0]("/job/1", "");
    units.on_job_removed("/job/1", unit, "done");
    ASSERT_EQ(units.reads.size(), 1u) << "the state is read once after the job";
    unit_state st;
    st.active_state = "failed";
    st.result = "exit-code";
    st.exec_main_code = CLD_EXITED;
    st.exec_main_status = 1;
    units.reads[0](st, "");
    ASSERT_EQ(units.reads.size(), 2u) << "and again to explain the failure";
    units.reads[1](st, "");
    EXPECT_EQ(replies.lines,
              std::vector<std::string>{"1: FAILED blog 7 unit-failed unit failed before ready: "
                                       "result exit-code, main process exited with status 1"});
}

TEST_F(AppDriver, AStartOfAFrozenAppThawsItWithoutStartUnit) {
    make_ready();
    driver->freeze({1, 8}, "blog", unit);
    units.freezes[0]("");
    EXPECT_EQ(replies.lines.back(), "1: FROZEN blog 8");
    driver->start({2, 9}, "blog", notify_start());
    units.thaws[0]("");
    EXPECT_EQ(replies.lines.back(), "2: READY blog 9");
    EXPECT_EQ(units.calls, (std::vector<std::string>{"StartUnit ondemand-exec@blog.service",
                                                     "FreezeUnit ondemand-exec@blog.service",
                                                     "ThawUnit ondemand-exec@blog.service"}));
}

TEST_F(AppDriver, AFreezeOfAStartingAppIsRefused) {
    driver->start({1, 7}, "blog", notify_start());
    driver->freeze({2, 7}, "blog", unit);
    EXPECT_EQ(replies.lines,
              std::vector<std::string>{"2: FAILED blog 7 not-freezable app is starting"});
}

TEST_F(AppDriver, ShuttingDownAnswersEveryStartAndPendingWait) {
    driver->start({1, 7}, "blog", notify_start());
    driver->wait({2, 3}, "other");
    driver->abandon_starts({proto::failure::shutting_down, {}});
    EXPECT_EQ(replies.lines, (std::vector<std::string>{"1: FAILED blog 7 shutting-down",
                                                       "2: FAILED other 3 shutting-down"}));
}

TEST_F(AppDriver, RepliesThatArriveAfterTheDriverIsGoneDoNothing) {
    driver->start({1, 7}, "blog", notify_start());
    auto late = units.starts[0];
    driver.reset();
    late("/job/1", "");
    EXPECT_TRUE(replies.lines.empty());
    EXPECT_FALSE(units.on_job_removed) << "the driver unhooks itself from the signals";
}

TEST_F(AppDriver, AUnitIsHeldByTheAppThatStartedItUntilItIsStopped) {
    EXPECT_EQ(driver->unit_holder(unit, "www"), std::nullopt);
    make_ready();
    EXPECT_EQ(driver->unit_holder(unit, "www"), "blog");
    EXPECT_EQ(driver->unit_holder(unit, "blog"), std::nullopt) << "its own unit";
    EXPECT_EQ(driver->unit_holder("ondemand-exec@www.service", "www"), std::nullopt);
    driver->stop({1, 8}, "blog", unit);
    EXPECT_EQ(driver->unit_holder(unit, "www"), "blog") << "while it stops";
    units.stops[0]("/job/2", "", false);
    units.on_job_removed("/job/2", unit, "done");
    EXPECT_EQ(driver->unit_holder(unit, "www"), std::nullopt);
}

TEST_F(AppDriver, AStopWhoseJobNeverEndsFailsAtTheStopDeadlineAndTheAppIsStopped) {
    driver->set_stop_timeout(1ms);
    make_ready();
    replies.lines.clear();
    driver->stop({2, 8}, "blog", unit);
    units.stops[0]("/job/2", "", false); // its JobRemoved never comes (a merged job)
    io.run_for(100ms);
    ASSERT_EQ(units.reads.size(), 1u) << "the unit's state is read at the deadline";
    EXPECT_TRUE(replies.lines.empty()) << "not answered before the state is known";
    unit_state st;
    st.active_state = "inactive";
    units.reads[0](st, "");
    EXPECT_EQ(replies.lines,
              (std::vector<std::string>{"1: DOWN blog", "3: DOWN blog",
                                        "2: FAILED blog 8 stop-failed timeout: the stop job did "
                                        "not finish within 1 ms; unit "
                                        "ondemand-exec@blog.service is inactive"}));
    EXPECT_EQ(driver->count(app_phase::stopped), 1u);
    EXPECT_EQ(driver->count(app_phase::stopping), 0u);
    units.on_job_removed("/job/2", unit, "done");
    EXPECT_EQ(replies.lines.size(), 3u) << "the late JobRemoved belongs to no attempt";
    driver->start({1, 9}, "blog", notify_start());
    EXPECT_EQ(units.calls.back(), "StartUnit ondemand-exec@blog.service") << "not wedged";
}

TEST_F(AppDriver, AStopWhoseJobNeverEndsLeavesTheAppReadyWhenItsUnitStillRuns) {
    driver->set_stop_timeout(1ms);
    make_ready();
    replies.lines.clear();
    driver->stop({2, 8}, "blog", unit);
    units.stops[0]("/job/2", "", false);
    io.run_for(100ms);
    ASSERT_EQ(units.reads.size(), 1u);
    unit_state st;
    st.active_state = "active";
    units.reads[0](st, "");
    EXPECT_EQ(replies.lines,
              (std::vector<std::string>{"2: FAILED blog 8 stop-failed timeout: the stop job did "
                                        "not finish within 1 ms; unit "
                                        "ondemand-exec@blog.service is active"}));
    EXPECT_EQ(driver->count(app_phase::ready), 1u);
}

TEST_F(AppDriver, AStopJobThatEndsWhileTheDeadlineReadsTheStateEndsTheStopAsUsual) {
    driver->set_stop_timeout(1ms);
    make_ready();
    replies.lines.clear();
    driver->stop({2, 8}, "blog", unit);
    units.stops[0]("/job/2", "", false);
    io.run_for(100ms);
    ASSERT_EQ(units.reads.size(), 1u);
    units.on_job_removed("/job/2", unit, "done");
    EXPECT_EQ(replies.lines.back(), "2: STOPPED blog 8");
    std::size_t answered = replies.lines.size();
    unit_state st;
    st.active_state = "inactive";
    units.reads[0](st, "");
    EXPECT_EQ(replies.lines.size(), answered) << "the late read changes nothing";
}

} // namespace
