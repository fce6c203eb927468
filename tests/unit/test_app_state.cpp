// The module's per-app state machine (ngx_module/ondemand_app_state.h).
#include "ondemand_app_state.h"

#include <gtest/gtest.h>

using ondemand::app_record;
using ondemand::app_state;
using ondemand::request_action;

namespace {

constexpr std::int64_t worker_a = 100;
constexpr std::int64_t worker_b = 200;
constexpr std::uint64_t timeout = 30000;

TEST(AppState, ColdRequestTakesTheStartAndBumpsTheGeneration) {
    app_record r;
    EXPECT_EQ(on_request(r, worker_a, 1000, timeout), request_action::hold_and_start);
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_EQ(r.gen.load(), 1u);
    EXPECT_EQ(r.starter_pid.load(), worker_a);
    EXPECT_EQ(r.deadline_ms.load(), 1000 + timeout);
    EXPECT_EQ(r.starts.load(), 1u);
}

TEST(AppState, OneStartPerHerd) {
    app_record r;
    ASSERT_EQ(on_request(r, worker_a, 1000, timeout), request_action::hold_and_start);
    for (int i = 0; i < 50; i++) {
        EXPECT_EQ(on_request(r, i % 2 ? worker_a : worker_b, 1001 + i, timeout),
                  request_action::hold_and_wait);
    }
    EXPECT_EQ(r.starts.load(), 1u);
    EXPECT_EQ(r.gen.load(), 1u);
}

TEST(AppState, StuckStartIsTakenOverAfterItsDeadline) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    EXPECT_EQ(on_request(r, worker_b, 1000 + timeout - 1, timeout), request_action::hold_and_wait);
    EXPECT_EQ(on_request(r, worker_b, 1000 + timeout, timeout), request_action::hold_and_start);
    EXPECT_EQ(r.starter_pid.load(), worker_b);
    EXPECT_EQ(r.gen.load(), 2u);
}

TEST(AppState, ReadyForTheCurrentGenerationMakesTheAppWarm) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    EXPECT_TRUE(on_ready(r, 1, 1500));
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_EQ(r.last_active_ms.load(), 1500u);
    EXPECT_EQ(on_request(r, worker_b, 1600, timeout), request_action::proxy);
    // A second READY for the same generation (another worker's WAIT) is harmless.
    EXPECT_TRUE(on_ready(r, 1, 1700));
}

TEST(AppState, StaleReadyIsIgnored) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    on_request(r, worker_b, 1000 + timeout, timeout); // taken over: gen 2
    EXPECT_FALSE(on_ready(r, 1, 40000));
    EXPECT_EQ(r.state.load(), app_state::starting);
    EXPECT_TRUE(on_ready(r, 2, 40000));
}

TEST(AppState, FailedMakesTheAppColdSoTheNextRequestRetries) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    EXPECT_FALSE(on_failed(r, 7));
    EXPECT_TRUE(on_failed(r, 1));
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(r.failures.load(), 1u);
    // The second worker's FAILED for the same start changes nothing more.
    EXPECT_FALSE(on_failed(r, 1));
    EXPECT_EQ(r.failures.load(), 1u);
    EXPECT_EQ(on_request(r, worker_b, 2000, timeout), request_action::hold_and_start);
    EXPECT_EQ(r.gen.load(), 2u);
}

TEST(AppState, WarmPathCountsRequestsInFlightOnlyWhenReady) {
    app_record r;
    EXPECT_FALSE(warm_enter(r));
    EXPECT_EQ(r.in_flight.load(), 0u);
    on_request(r, worker_a, 1000, timeout);
    on_ready(r, 1, 1100);
    EXPECT_TRUE(warm_enter(r));
    EXPECT_TRUE(warm_enter(r));
    EXPECT_EQ(r.in_flight.load(), 2u);
    warm_leave(r, 2000);
    warm_leave(r, 2500);
    EXPECT_EQ(r.in_flight.load(), 0u);
    EXPECT_EQ(r.last_active_ms.load(), 2500u);
}

TEST(AppState, StoppingAppHoldsRequests) {
    app_record r;
    r.state.store(app_state::stopping);
    EXPECT_FALSE(warm_enter(r));
    EXPECT_EQ(on_request(r, worker_a, 1000, timeout), request_action::hold);
}

TEST(AppState, DownMakesAReadyAppCold) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    on_ready(r, 1, 1100);
    on_down(r);
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_FALSE(warm_enter(r));
}

TEST(AppState, RecordIsFitForSharedMemory) {
    EXPECT_TRUE(std::is_trivially_destructible_v<app_record>);
    EXPECT_TRUE(std::atomic<std::uint64_t>::is_always_lock_free);
    EXPECT_TRUE(std::atomic<app_state>::is_always_lock_free);
}

TEST(AppState, StateNames) {
    EXPECT_STREQ(app_state_name(app_state::cold), "cold");
    EXPECT_STREQ(app_state_name(app_state::starting), "starting");
    EXPECT_STREQ(app_state_name(app_state::ready), "ready");
    EXPECT_STREQ(app_state_name(app_state::stopping), "stopping");
}

} // namespace
