// helperd's per-app bookkeeping without I/O: coalescing of starts, waiters, stale outcomes,
// stops, DOWN, WAITs that arrive before their START.
#include "app_core.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace ondemand::helperd;
namespace proto = ondemand::proto;
using namespace std::chrono_literals;
using testing::ElementsAre;
using testing::IsEmpty;
using testing::UnorderedElementsAre;
using decision = app_core::start_decision;
using wait_decision = app_core::wait_decision;
using stop_decision = app_core::stop_decision;
using freeze_decision = app_core::freeze_decision;

namespace {

start_params params(std::string unit = "ondemand-blog.service") {
    return {std::move(unit), "connect", 5000ms, "/run/blog.sock"};
}

const steady_time t0 = steady_time{} + 1000s;

} // namespace

TEST(AppCore, FirstStartStartsTheUnit) {
    app_core app("blog");
    EXPECT_EQ(app.phase(), app_phase::unknown);
    EXPECT_EQ(app.on_start({1, 5}, params()), decision::start_unit);
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_EQ(app.unit(), "ondemand-blog.service");
    EXPECT_EQ(app.params().socket, "/run/blog.sock");
    EXPECT_THAT(app.start_waiters(), ElementsAre(waiter{1, 5}));
}

TEST(AppCore, DuplicateStartsJoinOneAttempt) {
    app_core app("blog");
    ASSERT_EQ(app.on_start({1, 5}, params()), decision::start_unit);
    std::uint64_t attempt = app.attempt();
    for (client_id c = 2; c <= 100; ++c) {
        EXPECT_EQ(app.on_start({c, 5}, params()), decision::joined);
    }
    EXPECT_EQ(app.on_wait({101, 5}, t0), wait_decision::joined);
    EXPECT_EQ(app.attempt(), attempt);
    auto answered = app.start_succeeded(attempt);
    EXPECT_EQ(answered.size(), 101u);
    EXPECT_EQ(app.phase(), app_phase::ready);
    EXPECT_THAT(app.start_waiters(), IsEmpty());
}

TEST(AppCore, EveryWaiterKeepsItsGeneration) {
    app_core app("blog");
    app.on_start({1, 5}, params());
    app.on_start({2, 6}, params());
    app.on_wait({3, 7}, t0);
    EXPECT_THAT(app.start_failed(app.attempt(), {proto::failure::timeout, ""}),
                ElementsAre(waiter{1, 5}, waiter{2, 6}, waiter{3, 7}));
    EXPECT_EQ(app.phase(), app_phase::failed);
    EXPECT_EQ(app.last_failure(), (failure_reason{proto::failure::timeout, ""}));
}

TEST(AppCore, StaleOutcomesAreIgnored) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    std::uint64_t first = app.attempt();
    ASSERT_THAT(app.start_failed(first, {proto::failure::unit_failed, "boom"}),
                ElementsAre(waiter{1, 1}));
    app.on_start({1, 2}, params());
    EXPECT_NE(app.attempt(), first);
    EXPECT_THAT(app.start_succeeded(first), IsEmpty());
    EXPECT_THAT(app.start_failed(first, {proto::failure::unit_failed, "late"}), IsEmpty());
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_THAT(app.start_succeeded(app.attempt()), ElementsAre(waiter{1, 2}));
    EXPECT_THAT(app.start_succeeded(app.attempt()), IsEmpty()) << "answered once only";
}

TEST(AppCore, StartOfAReadyAppChecksInsteadOfStarting) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    EXPECT_EQ(app.on_start({2, 2}, params()), decision::check_active);
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_EQ(app.on_start({3, 2}, params()), decision::joined);
    EXPECT_THAT(app.start_succeeded(app.attempt()), ElementsAre(waiter{2, 2}, waiter{3, 2}));
}

TEST(AppCore, StartAfterFailureOrStopStartsAgain) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_failed(app.attempt(), {proto::failure::unit_failed, "x"});
    EXPECT_EQ(app.on_start({1, 2}, params()), decision::start_unit);
    app.start_succeeded(app.attempt());
    std::vector<waiter> canceled;
    ASSERT_EQ(app.on_stop({1, 2}, "ondemand-blog.service", canceled), stop_decision::stop_unit);
    app.stop_finished(app.attempt());
    EXPECT_EQ(app.phase(), app_phase::stopped);
    EXPECT_EQ(app.on_start({1, 3}, params()), decision::start_unit);
}

TEST(AppCore, WaitForAReadyAppIsAnsweredAtOnce) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    EXPECT_EQ(app.on_wait({2, 1}, t0), wait_decision::ready_now);
}

TEST(AppCore, WaitBeforeStartIsKeptAndJoins) {
    app_core app("blog");
    EXPECT_EQ(app.on_wait({2, 9}, t0), wait_decision::pending);
    EXPECT_EQ(app.pending_waiters(), 1u);
    EXPECT_EQ(app.next_pending_deadline(), t0 + app_core::pending_wait_limit);
    EXPECT_EQ(app.on_start({1, 9}, params()), decision::start_unit);
    EXPECT_EQ(app.pending_waiters(), 0u);
    EXPECT_FALSE(app.next_pending_deadline());
    EXPECT_THAT(app.start_succeeded(app.attempt()),
                UnorderedElementsAre(waiter{1, 9}, waiter{2, 9}));
}

TEST(AppCore, PendingWaitExpires) {
    app_core app("blog");
    app.on_wait({2, 9}, t0);
    app.on_wait({3, 9}, t0 + 10s);
    EXPECT_THAT(app.expire_pending(t0 + 59s), IsEmpty());
    EXPECT_THAT(app.expire_pending(t0 + 60s), ElementsAre(waiter{2, 9}));
    EXPECT_EQ(app.next_pending_deadline(), t0 + 70s);
    EXPECT_THAT(app.expire_pending(t0 + 70s), ElementsAre(waiter{3, 9}));
    EXPECT_EQ(app.pending_waiters(), 0u);
}

TEST(AppCore, WaitForAFailedGenerationFailsAtOnce) {
    app_core app("blog");
    app.on_start({1, 4}, params());
    app.start_failed(app.attempt(),
                     {proto::failure::unit_failed, "start job failed: result exit-code"});
    EXPECT_EQ(app.on_wait({2, 4}, t0), wait_decision::failed_now);
    EXPECT_EQ(app.on_wait({2, 3}, t0), wait_decision::failed_now);
    EXPECT_EQ(app.on_wait({2, 5}, t0), wait_decision::pending) << "a newer start is coming";
}

TEST(AppCore, StartDuringStopWaitsForTheStop) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    std::vector<waiter> canceled;
    ASSERT_EQ(app.on_stop({1, 1}, "ondemand-blog.service", canceled), stop_decision::stop_unit);
    std::uint64_t stop_attempt = app.attempt();
    EXPECT_EQ(app.on_start({2, 2}, params()), decision::after_stop);
    EXPECT_EQ(app.on_wait({3, 2}, t0), wait_decision::joined);
    EXPECT_TRUE(app.start_queued());
    EXPECT_EQ(app.phase(), app_phase::stopping);

    app_core::stop_outcome out = app.stop_finished(stop_attempt);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{1, 1}));
    EXPECT_TRUE(out.start_next);
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_NE(app.attempt(), stop_attempt);
    EXPECT_THAT(app.start_succeeded(app.attempt()), ElementsAre(waiter{2, 2}, waiter{3, 2}));
}

TEST(AppCore, WaitDuringStopWithoutStartIsPending) {
    app_core app("blog");
    std::vector<waiter> canceled;
    app.on_stop({1, 1}, "ondemand-blog.service", canceled);
    EXPECT_EQ(app.on_wait({2, 2}, t0), wait_decision::pending);
    EXPECT_EQ(app.on_start({3, 2}, params()), decision::after_stop);
    EXPECT_EQ(app.pending_waiters(), 0u);
    auto out = app.stop_finished(app.attempt());
    EXPECT_TRUE(out.start_next);
    EXPECT_THAT(app.start_waiters(), UnorderedElementsAre(waiter{2, 2}, waiter{3, 2}));
}

TEST(AppCore, StopCancelsARunningStart) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.on_start({2, 1}, params());
    std::uint64_t start_attempt = app.attempt();
    std::vector<waiter> canceled;
    EXPECT_EQ(app.on_stop({3, 1}, "ondemand-blog.service", canceled), stop_decision::stop_unit);
    EXPECT_THAT(canceled, ElementsAre(waiter{1, 1}, waiter{2, 1}));
    EXPECT_THAT(app.start_succeeded(start_attempt), IsEmpty());
    EXPECT_EQ(app.phase(), app_phase::stopping);
}

TEST(AppCore, SecondStopJoinsAndCancelsAQueuedStart) {
    app_core app("blog");
    std::vector<waiter> canceled;
    app.on_stop({1, 1}, "ondemand-blog.service", canceled);
    app.on_start({2, 2}, params());
    EXPECT_EQ(app.on_stop({3, 2}, "ondemand-blog.service", canceled), stop_decision::joined);
    EXPECT_THAT(canceled, ElementsAre(waiter{2, 2}));
    auto out = app.stop_finished(app.attempt());
    EXPECT_THAT(out.waiters, ElementsAre(waiter{1, 1}, waiter{3, 2}));
    EXPECT_FALSE(out.start_next);
}

TEST(AppCore, StaleStopOutcomeIsIgnored) {
    app_core app("blog");
    std::vector<waiter> canceled;
    app.on_stop({1, 1}, "ondemand-blog.service", canceled);
    std::uint64_t attempt = app.attempt();
    EXPECT_TRUE(app.stop_finished(attempt + 1).waiters.empty());
    EXPECT_EQ(app.phase(), app_phase::stopping);
}

TEST(AppCore, GoesDownOnlyWhenReady) {
    app_core app("blog");
    EXPECT_FALSE(app.went_down());
    app.on_start({1, 1}, params());
    EXPECT_FALSE(app.went_down()) << "starting: a failure, not a DOWN";
    app.start_succeeded(app.attempt());
    EXPECT_TRUE(app.went_down());
    EXPECT_EQ(app.phase(), app_phase::stopped);
    EXPECT_FALSE(app.went_down());
}

TEST(AppCore, ForgottenClientsAreNotAnswered) {
    app_core app("blog");
    app.on_wait({7, 1}, t0);
    app.on_start({1, 1}, params());
    app.on_start({2, 1}, params());
    app.forget_client(1);
    app.forget_client(7);
    EXPECT_THAT(app.start_succeeded(app.attempt()), ElementsAre(waiter{2, 1}));
}

TEST(AppCore, AbandonAnswersEveryStartWaiter) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app_core other("wiki");
    other.on_wait({2, 3}, t0);
    EXPECT_THAT(app.abandon_starts({proto::failure::shutting_down, ""}), ElementsAre(waiter{1, 1}));
    EXPECT_EQ(app.phase(), app_phase::failed);
    EXPECT_EQ(app.last_failure(), (failure_reason{proto::failure::shutting_down, ""}));
    EXPECT_THAT(other.abandon_starts({proto::failure::shutting_down, ""}),
                ElementsAre(waiter{2, 3}));
}

TEST(AppCore, PhaseNames) {
    EXPECT_EQ(phase_name(app_phase::starting), "starting");
    EXPECT_EQ(phase_name(app_phase::ready), "ready");
    EXPECT_EQ(phase_name(app_phase::stopping), "stopping");
    EXPECT_EQ(phase_name(app_phase::stopped), "stopped");
    EXPECT_EQ(phase_name(app_phase::failed), "failed");
}

TEST(AppCore, FreezeThenStartThaws) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    EXPECT_EQ(app.on_freeze({1, 1}, "ondemand-blog.service"), freeze_decision::freeze_unit);
    EXPECT_EQ(app.phase(), app_phase::freezing);
    EXPECT_EQ(app.on_freeze({2, 1}, "ondemand-blog.service"), freeze_decision::joined);
    auto out = app.freeze_finished(app.attempt(), true);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{1, 1}, waiter{2, 1}));
    EXPECT_FALSE(out.start_next);
    EXPECT_EQ(app.phase(), app_phase::frozen);
    EXPECT_EQ(app.on_wait({3, 2}, t0), wait_decision::pending) << "the thawing START comes";
    EXPECT_EQ(app.on_start({1, 2}, params()), decision::thaw_unit);
    EXPECT_THAT(app.start_succeeded(app.attempt()),
                UnorderedElementsAre(waiter{1, 2}, waiter{3, 2}));
}

TEST(AppCore, FailedFreezeLeavesTheAppReady) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    app.on_freeze({1, 1}, "ondemand-blog.service");
    auto out = app.freeze_finished(app.attempt(), false);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{1, 1}));
    EXPECT_EQ(app.phase(), app_phase::ready);
}

TEST(AppCore, FailedFreezeOfAStoppedAppLeavesItStopped) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    std::vector<waiter> canceled;
    app.on_stop({1, 1}, "ondemand-blog.service", canceled);
    app.stop_finished(app.attempt());
    ASSERT_EQ(app.phase(), app_phase::stopped);
    EXPECT_EQ(app.on_freeze({1, 2}, "ondemand-blog.service"), freeze_decision::freeze_unit);
    auto out = app.freeze_finished(app.attempt(), false);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{1, 2}));
    EXPECT_EQ(app.phase(), app_phase::stopped) << "a failed FREEZE must not mark it ready";

    app_core never("www");
    never.on_freeze({1, 1}, "ondemand-www.service");
    never.freeze_finished(never.attempt(), false);
    EXPECT_EQ(never.phase(), app_phase::unknown);
}

TEST(AppCore, StartQueuedBehindAFailedFreezeOfAStoppedAppStartsTheUnit) {
    app_core app("blog");
    app.on_freeze({1, 1}, "ondemand-blog.service");
    EXPECT_EQ(app.on_start({2, 1}, params()), decision::after_stop);
    auto out = app.freeze_finished(app.attempt(), false);
    ASSERT_TRUE(out.start_next.has_value());
    EXPECT_EQ(*out.start_next, decision::start_unit) << "nothing runs: start it, not re-check";
}

TEST(AppCore, LeaseArithmeticSaturates) {
    app_core app("blog");
    app.on_use("nginx-a", t0, std::chrono::milliseconds::max());
    auto left = app.used_elsewhere("nginx-b", t0);
    ASSERT_TRUE(left.has_value());
    EXPECT_EQ(*left, std::chrono::milliseconds(proto::max_lease_ms));
    app.on_use("nginx-c", t0, std::chrono::milliseconds(-1));
    EXPECT_FALSE(app.used_elsewhere("nginx-a", t0).has_value()) << "a negative lease is none";
    EXPECT_EQ(saturated_ms(UINT64_MAX, proto::max_timeout_ms),
              std::chrono::milliseconds(proto::max_timeout_ms));
    EXPECT_EQ(saturated_ms(5000, proto::max_timeout_ms), 5000ms);
}

TEST(AppCore, StartDuringFreezeFollowsIt) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    app.on_freeze({1, 1}, "ondemand-blog.service");
    std::uint64_t freeze_attempt = app.attempt();
    EXPECT_EQ(app.on_start({2, 2}, params()), decision::after_stop);
    auto out = app.freeze_finished(freeze_attempt, true);
    ASSERT_TRUE(out.start_next);
    EXPECT_EQ(*out.start_next, decision::thaw_unit);
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_THAT(app.start_succeeded(app.attempt()), ElementsAre(waiter{2, 2}));

    app.on_freeze({1, 3}, "ondemand-blog.service");
    app.on_start({2, 4}, params());
    out = app.freeze_finished(app.attempt(), false);
    ASSERT_TRUE(out.start_next);
    EXPECT_EQ(*out.start_next, decision::check_active) << "the freeze failed: still running";
}

TEST(AppCore, FreezeIsRefusedWhileStartingOrStopping) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    EXPECT_EQ(app.on_freeze({1, 1}, "ondemand-blog.service"), freeze_decision::refused);
    std::vector<waiter> canceled;
    app.on_stop({1, 1}, "ondemand-blog.service", canceled);
    EXPECT_EQ(app.on_freeze({1, 1}, "ondemand-blog.service"), freeze_decision::refused);
}

TEST(AppCore, StopOfAFrozenAppAndDownWhileFrozen) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    app.on_freeze({1, 1}, "ondemand-blog.service");
    app.freeze_finished(app.attempt(), true);
    EXPECT_TRUE(app.went_down()) << "a frozen unit that dies is DOWN too";

    app.on_start({1, 2}, params());
    app.start_succeeded(app.attempt());
    app.on_freeze({1, 2}, "ondemand-blog.service");
    std::vector<waiter> canceled;
    EXPECT_EQ(app.on_stop({2, 2}, "ondemand-blog.service", canceled), stop_decision::stop_unit);
    EXPECT_THAT(canceled, ElementsAre(waiter{1, 2})) << "the stop replaces the freeze";
}

namespace {

// Shared apps: a client's USE is a lease; a STOP from another client is refused meanwhile.
TEST(AppCoreLeases, AnotherClientsLeaseCounts) {
    app_core a("blog");
    const steady_time t0{};
    a.on_use("nginx-a", t0, 5000ms);
    EXPECT_FALSE(a.used_elsewhere("nginx-a", t0).has_value()); // its own lease
    auto left = a.used_elsewhere("nginx-c", t0 + 1000ms);
    ASSERT_TRUE(left.has_value());
    EXPECT_EQ(*left, 4000ms);
}

TEST(AppCoreLeases, ALeaseEndsOnTimeWithinTheSlack) {
    app_core a("blog");
    const steady_time t0{};
    a.on_use("nginx-a", t0, 5000ms);
    EXPECT_TRUE(a.used_elsewhere("nginx-c", t0 + 4800ms).has_value());
    EXPECT_FALSE(a.used_elsewhere("nginx-c", t0 + 4950ms).has_value());
    EXPECT_FALSE(a.used_elsewhere("nginx-c", t0 + 6000ms).has_value());
}

TEST(AppCoreLeases, TheLongestLeaseCountsAndRenewalsExtend) {
    app_core a("blog");
    const steady_time t0{};
    a.on_use("nginx-a", t0, 1000ms);
    a.on_use("nginx-b", t0, 3000ms);
    a.on_use("nginx-a", t0 + 500ms, 4000ms);
    EXPECT_EQ(*a.used_elsewhere("nginx-c", t0), 4500ms);
}

TEST(AppCoreLeases, AGoneOwnerHoldsNoLease) {
    app_core a("blog");
    const steady_time t0{};
    a.on_use("nginx-a", t0, 5000ms);
    a.on_use("nginx-b", t0, 2000ms);
    a.forget_owner("nginx-a");
    EXPECT_EQ(a.used_elsewhere("nginx-c", t0), 2000ms) << "nginx-b's lease stays";
    a.forget_owner("nginx-b");
    EXPECT_FALSE(a.used_elsewhere("nginx-c", t0).has_value());
}

TEST(AppCoreUnit, AnAppHoldsItsUnitFromItsStartUntilItIsStopped) {
    app_core app("blog");
    EXPECT_FALSE(app.holds_unit("ondemand-blog.service")) << "unknown";
    app.on_start({1, 1}, params());
    EXPECT_TRUE(app.holds_unit("ondemand-blog.service")) << "starting";
    EXPECT_FALSE(app.holds_unit("ondemand-www.service"));
    app.start_succeeded(app.attempt());
    EXPECT_TRUE(app.holds_unit("ondemand-blog.service")) << "ready";
    std::vector<waiter> canceled;
    app.on_stop({1, 2}, "ondemand-blog.service", canceled);
    EXPECT_TRUE(app.holds_unit("ondemand-blog.service")) << "stopping";
    app.on_start({1, 3}, params("ondemand-next.service"));
    EXPECT_TRUE(app.holds_unit("ondemand-next.service")) << "the unit of a START queued behind";
    app.on_stop({1, 4}, "ondemand-blog.service", canceled);
    EXPECT_FALSE(app.holds_unit("ondemand-next.service")) << "that START is canceled";
    app.stop_finished(app.attempt());
    EXPECT_FALSE(app.holds_unit("ondemand-blog.service")) << "stopped";
    app.on_start({1, 5}, params());
    app.start_failed(app.attempt(), {proto::failure::timeout, ""});
    EXPECT_FALSE(app.holds_unit("ondemand-blog.service")) << "failed";
}

TEST(AppCoreStopDeadline, AStopThatNeverEndsLeavesTheAppReadyWhenItsUnitStillRuns) {
    app_core app("blog");
    app.on_start({1, 1}, params());
    app.start_succeeded(app.attempt());
    std::vector<waiter> canceled;
    app.on_stop({2, 2}, "ondemand-blog.service", canceled);
    std::uint64_t attempt = app.attempt();
    auto out = app.stop_abandoned(attempt, true);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{2, 2}));
    EXPECT_FALSE(out.start_next);
    EXPECT_EQ(app.phase(), app_phase::ready);
    EXPECT_THAT(app.stop_finished(attempt).waiters, IsEmpty()) << "its late end changes nothing";
    EXPECT_EQ(app.phase(), app_phase::ready);
}

TEST(AppCoreStopDeadline, AStopThatNeverEndsLeavesTheAppStoppedWhenItsUnitIsDown) {
    app_core app("blog");
    std::vector<waiter> canceled;
    app.on_stop({2, 2}, "ondemand-blog.service", canceled);
    EXPECT_EQ(app.on_start({3, 3}, params()), decision::after_stop);
    auto out = app.stop_abandoned(app.attempt(), false);
    EXPECT_THAT(out.waiters, ElementsAre(waiter{2, 2}));
    EXPECT_TRUE(out.start_next) << "the START queued behind the stop goes ahead";
    EXPECT_EQ(app.phase(), app_phase::starting);
    EXPECT_THAT(app.start_waiters(), ElementsAre(waiter{3, 3}));
}

TEST(AppCoreStopDeadline, AStaleDeadlineChangesNothing) {
    app_core app("blog");
    std::vector<waiter> canceled;
    app.on_stop({2, 2}, "ondemand-blog.service", canceled);
    std::uint64_t attempt = app.attempt();
    app.stop_finished(attempt);
    EXPECT_THAT(app.stop_abandoned(attempt, true).waiters, IsEmpty());
    EXPECT_EQ(app.phase(), app_phase::stopped);
}

} // namespace
