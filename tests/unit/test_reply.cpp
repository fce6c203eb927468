// Applying a helperd reply to an app's record (ngx_module/ondemand_reply.h): the transition,
// which held requests wake with which status, and what the worker logs; whether a held
// request asks helperd; what the resync after a reconnect sends.
#include "ondemand_reply.h"

#include <gtest/gtest.h>

using ondemand::app_record;
using ondemand::app_state;
using ondemand::apply_reply;
using ondemand::reply_context;
using ondemand::reply_event;
using ondemand::wake_kind;
namespace proto = ondemand::proto;

namespace {

constexpr std::int64_t worker = 100;
constexpr std::uint64_t timeout = 30000;

proto::message reply(proto::verb kind, std::uint64_t gen,
                     proto::failure reason = proto::failure::other) {
    proto::message m;
    m.kind = kind;
    m.app = "blog";
    m.gen = gen;
    m.reason = reason;
    return m;
}

// A record whose start (generation 1) this worker owns.
void starting(app_record& r) {
    on_request(r, worker, 1000, timeout);
}

// A ready record (generation 1) that the idle scan has begun to stop (or freeze).
void stopping(app_record& r, bool freeze = false) {
    starting(r);
    on_ready(r, 1, 1000);
    if (freeze) {
        ASSERT_TRUE(begin_freeze(r, worker, 100000, 1000, timeout));
    } else {
        ASSERT_TRUE(begin_stop(r, worker, 100000, 1000, timeout));
    }
}

TEST(Reply, OnlyTheFiveAppVerbsAreRepliesAboutAnApp) {
    EXPECT_TRUE(ondemand::is_app_reply(proto::verb::ready));
    EXPECT_TRUE(ondemand::is_app_reply(proto::verb::failed));
    EXPECT_TRUE(ondemand::is_app_reply(proto::verb::stopped));
    EXPECT_TRUE(ondemand::is_app_reply(proto::verb::frozen));
    EXPECT_TRUE(ondemand::is_app_reply(proto::verb::down));
    EXPECT_FALSE(ondemand::is_app_reply(proto::verb::error));
    EXPECT_FALSE(ondemand::is_app_reply(proto::verb::app));
    EXPECT_FALSE(ondemand::is_app_reply(proto::verb::end));
}

TEST(Reply, ReadyMakesTheAppWarmWakesTheHeldRequestsAndReportsUse) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::ready, 1), {.now_ms = 1500});
    EXPECT_TRUE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
    EXPECT_EQ(e.event, reply_event::none);
    EXPECT_TRUE(e.report_use);
    EXPECT_TRUE(e.reset_warm_backoff);
}

TEST(Reply, AStaleReadyStillReportsUseButDoesNotResetTheKeepWarmBackoff) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::ready, 7), {.now_ms = 1500});
    EXPECT_FALSE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
    EXPECT_TRUE(e.report_use);
    EXPECT_FALSE(e.reset_warm_backoff);
}

TEST(Reply, AFailedStartMakesTheAppColdAndFailsTheHeldRequestsWithTheFailedStatus) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::unit_failed), {});
    EXPECT_TRUE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(e.wake, wake_kind::failed);
    EXPECT_EQ(e.event, reply_event::start_failed);
    EXPECT_FALSE(e.retry_keep_warm);
}

TEST(Reply, AStartTimeoutFailsTheHeldRequestsWith504AndLogsTheTimeout) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::timeout), {});
    EXPECT_EQ(e.wake, wake_kind::timeout);
    EXPECT_EQ(e.event, reply_event::start_timeout);
}

TEST(Reply, AnUnknownFailureCodeIsAFailureLikeAnyOther) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::other), {});
    EXPECT_EQ(e.wake, wake_kind::failed);
    EXPECT_EQ(e.event, reply_event::start_failed);
}

TEST(Reply, AFailureOfTheCurrentGenerationSeenByAnotherWorkerLogsOnlyWhereRequestsAreHeld) {
    app_record r;
    starting(r);
    on_failed(r, 1); // the worker that got it first
    auto quiet = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::unit_failed), {});
    EXPECT_FALSE(quiet.applied);
    EXPECT_EQ(quiet.event, reply_event::none);
    EXPECT_EQ(quiet.wake, wake_kind::failed);
    auto held = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::unit_failed),
                            {.held_here = true});
    EXPECT_EQ(held.event, reply_event::start_failed);
}

TEST(Reply, AFailureOfAnOlderGenerationWakesTheHeldRequestsToLookAgain) {
    app_record r;
    starting(r);
    auto e =
        apply_reply(r, reply(proto::verb::failed, 0, proto::failure::timeout), {.held_here = true});
    EXPECT_FALSE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
    EXPECT_EQ(e.event, reply_event::none);
}

TEST(Reply, AKeepWarmAppWhoseStartFailedIsStartedAgainLater) {
    app_record r;
    starting(r);
    auto e =
        apply_reply(r, reply(proto::verb::failed, 1, proto::failure::timeout), {.keep_warm = true});
    EXPECT_TRUE(e.retry_keep_warm);
}

TEST(Reply, InUseForAStopKeepsTheAppReadyAndLogsThatAnotherNginxUsesIt) {
    app_record r;
    stopping(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::in_use), {});
    EXPECT_TRUE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_EQ(e.event, reply_event::stop_refused);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
}

TEST(Reply, InUseForAFreezeKeepsTheAppReady) {
    app_record r;
    stopping(r, true);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::in_use), {});
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_EQ(e.event, reply_event::freeze_refused);
}

TEST(Reply, AFailedStopEndsTheStopAndTheHeldRequestsStartTheAppAgain) {
    app_record r;
    stopping(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::stop_failed), {});
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(e.event, reply_event::stop_failed);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
}

TEST(Reply, AFailedFreezeLeavesTheAppReady) {
    app_record r;
    stopping(r, true);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::freeze_failed), {});
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_EQ(e.event, reply_event::freeze_failed);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
}

TEST(Reply, InUseDuringAStartIsAnOrdinaryStartFailure) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::in_use), {});
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(e.wake, wake_kind::failed);
}

TEST(Reply, StoppedMakesTheAppColdAndLogsIt) {
    app_record r;
    stopping(r);
    auto e = apply_reply(r, reply(proto::verb::stopped, 1), {});
    EXPECT_TRUE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(e.event, reply_event::stopped);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
}

TEST(Reply, AStaleStoppedLogsNothing) {
    app_record r;
    stopping(r);
    auto e = apply_reply(r, reply(proto::verb::stopped, 0), {});
    EXPECT_FALSE(e.applied);
    EXPECT_EQ(e.event, reply_event::none);
}

TEST(Reply, FrozenFreezesTheAppAndLogsIt) {
    app_record r;
    stopping(r, true);
    auto e = apply_reply(r, reply(proto::verb::frozen, 1), {});
    EXPECT_EQ(r.state.load(), app_state::frozen);
    EXPECT_EQ(e.event, reply_event::frozen);
}

TEST(Reply, DownMakesAReadyAppColdAndAKeepWarmAppIsStartedAgain) {
    app_record r;
    starting(r);
    on_ready(r, 1, 1000);
    auto e = apply_reply(r, reply(proto::verb::down, 0), {.keep_warm = true});
    EXPECT_TRUE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(e.event, reply_event::went_down);
    EXPECT_TRUE(e.warm_up);
    EXPECT_EQ(e.wake, wake_kind::reevaluate);
}

TEST(Reply, DownDuringAStartChangesNothing) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::down, 0), {.keep_warm = true});
    EXPECT_FALSE(e.applied);
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_EQ(e.event, reply_event::none);
    EXPECT_FALSE(e.warm_up);
}

// issue #11, 3: a graceful helperd restart answers every waiter "FAILED app gen shutting-down".
// That is the helper going away, not the start failing: the record is untouched (the start
// stays this worker's), the held requests stay held, and the connection counts as lost.
TEST(Reply, ShuttingDownLeavesTheStartAndTheHeldRequestsAloneAndMeansTheHelperIsGone) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::shutting_down),
                         {.keep_warm = true, .held_here = true});
    EXPECT_TRUE(e.helper_gone);
    EXPECT_FALSE(e.applied);
    EXPECT_EQ(e.wake, wake_kind::none);
    EXPECT_EQ(e.event, reply_event::none);
    EXPECT_FALSE(e.retry_keep_warm);
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_EQ(r.starter_pid.load(), worker);
    EXPECT_EQ(r.gen.load(), 1U);
    EXPECT_EQ(r.counters.failures.load(), 0U);
}

TEST(Reply, ShuttingDownDuringAStopLeavesTheStopToTheResync) {
    app_record r;
    stopping(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::shutting_down), {});
    EXPECT_TRUE(e.helper_gone);
    EXPECT_EQ(e.wake, wake_kind::none);
    EXPECT_EQ(r.state.load(), app_state::stopping);
}

TEST(Reply, OtherFailuresDoNotMeanTheHelperIsGone) {
    app_record r;
    starting(r);
    auto e = apply_reply(r, reply(proto::verb::failed, 1, proto::failure::unit_failed), {});
    EXPECT_FALSE(e.helper_gone);
    EXPECT_EQ(e.wake, wake_kind::failed);
}

using ondemand::ask_kind;
using ondemand::asked_state;
using ondemand::decide_ask;

// The bug found in the restructuring: a keep_warm app asked by warm_up keeps `asked` for its
// generation; a request held for it while the helper is down must still need the helper (arm
// ondemand_helper_timeout, cut the backoff short), not return early as "already asked".
TEST(Ask, WithoutTheHelperARequestNeedsItEvenIfTheGenerationWasAskedBefore) {
    asked_state asked{.asked = true, .asked_gen = 1};
    EXPECT_EQ(decide_ask(false, false, asked, 1), ask_kind::need_helper);
    EXPECT_EQ(decide_ask(false, true, asked, 1), ask_kind::need_helper);
    EXPECT_EQ(decide_ask(false, false, {}, 1), ask_kind::need_helper);
}

TEST(Ask, AWaitIsSentOncePerGenerationAndAStartAlways) {
    asked_state asked{.asked = true, .asked_gen = 1};
    EXPECT_EQ(decide_ask(true, false, asked, 1), ask_kind::nothing);
    EXPECT_EQ(decide_ask(true, false, asked, 2), ask_kind::send);
    EXPECT_EQ(decide_ask(true, false, {}, 1), ask_kind::send);
    EXPECT_EQ(decide_ask(true, true, asked, 1), ask_kind::send);
}

using ondemand::plan_resync;
using ondemand::resync_context;

constexpr std::int64_t other_worker = 200;

TEST(Resync, AStartThisWorkerOwnsIsAskedAgainEvenWithoutHeldRequestsHere) {
    app_record r;
    starting(r); // deadline 31000
    auto p = plan_resync(r, {.pid = worker, .now_ms = 2000});
    EXPECT_TRUE(p.start);
    EXPECT_FALSE(p.stop);
    EXPECT_FALSE(p.wake);
    EXPECT_FALSE(p.report_use);
}

TEST(Resync, AnOwnedStartPastItsDeadlineIsAskedAgainOnlyForHeldRequestsOrKeepWarm) {
    app_record r;
    starting(r);
    EXPECT_FALSE(plan_resync(r, {.pid = worker, .now_ms = 40000}).start);
    EXPECT_TRUE(plan_resync(r, {.pid = worker, .now_ms = 40000, .keep_warm = true}).start);
    EXPECT_TRUE(plan_resync(r, {.pid = worker, .now_ms = 40000, .held_here = true}).start);
}

TEST(Resync, AStartAnotherWorkerOwnsIsAskedAgainWhereRequestsAreHeld) {
    app_record r;
    starting(r);
    EXPECT_FALSE(plan_resync(r, {.pid = other_worker, .now_ms = 2000}).start);
    EXPECT_TRUE(plan_resync(r, {.pid = other_worker, .now_ms = 2000, .held_here = true}).start);
}

TEST(Resync, AStopThisWorkerBeganIsSentAgainAndHeldRequestsKeepWaiting) {
    app_record r;
    stopping(r);
    auto p = plan_resync(r, {.pid = worker, .now_ms = 100100, .held_here = true});
    EXPECT_TRUE(p.stop);
    EXPECT_FALSE(p.wake);
    EXPECT_FALSE(plan_resync(r, {.pid = other_worker, .now_ms = 100100}).stop);

    app_record f;
    stopping(f, true);
    EXPECT_TRUE(plan_resync(f, {.pid = worker, .now_ms = 100100}).stop);
}

// Leases (issue #12): a restarted helperd has none; every worker reports its ready apps again.
TEST(Resync, AReadyAppIsReportedInUseAndItsHeldRequestsWake) {
    app_record r;
    starting(r);
    on_ready(r, 1, 1500);
    auto p = plan_resync(r, {.pid = other_worker, .now_ms = 2000});
    EXPECT_TRUE(p.report_use);
    EXPECT_FALSE(p.start);
    EXPECT_FALSE(p.wake);
    EXPECT_TRUE(plan_resync(r, {.pid = other_worker, .now_ms = 2000, .held_here = true}).wake);
}

TEST(Resync, HeldRequestsForAColdAppWakeToStartIt) {
    app_record r;
    auto p = plan_resync(r, {.pid = worker, .now_ms = 2000, .held_here = true});
    EXPECT_TRUE(p.wake);
    EXPECT_FALSE(p.start);
    EXPECT_FALSE(p.report_use);
    EXPECT_FALSE(plan_resync(r, {.pid = worker, .now_ms = 2000}).wake);
}

} // namespace
