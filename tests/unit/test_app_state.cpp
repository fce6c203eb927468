// The module's per-app state machine (ngx_module/ondemand_app_state.h).
#include "ondemand_app_state.h"

#include <gtest/gtest.h>

#include <thread>

using ondemand::app_record;
using ondemand::app_state;
using ondemand::begin_orphan_stop;
using ondemand::claim_worker_slot;
using ondemand::clear_worker_counts;
using ondemand::older_workers_alive;
using ondemand::on_stopped;
using ondemand::orphan_freeable;
using ondemand::reap_dead_workers;
using ondemand::release_worker_slot;
using ondemand::request_action;
using ondemand::this_worker_slot;
using ondemand::warm_enter;
using ondemand::warm_leave;
using ondemand::worker_slot_table;
using ondemand::worker_slots;

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
    EXPECT_EQ(r.counters.starts.load(), 1u);
}

TEST(AppState, OneStartPerHerd) {
    app_record r;
    ASSERT_EQ(on_request(r, worker_a, 1000, timeout), request_action::hold_and_start);
    for (int i = 0; i < 50; i++) {
        EXPECT_EQ(on_request(r, i % 2 ? worker_a : worker_b, 1001 + i, timeout),
                  request_action::hold_and_wait);
    }
    EXPECT_EQ(r.counters.starts.load(), 1u);
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
    EXPECT_EQ(r.counters.failures.load(), 1u);
    // The second worker's FAILED for the same start changes nothing more.
    EXPECT_FALSE(on_failed(r, 1));
    EXPECT_EQ(r.counters.failures.load(), 1u);
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
    r.deadline_ms.store(5000);
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

TEST(AppState, DownLeavesAStartInProgressAlone) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    EXPECT_FALSE(on_down(r));
    EXPECT_EQ(r.state.load(), app_state::starting);
}

TEST(AppState, OnlyTheStarterAbandonsItsStart) {
    app_record r;
    on_request(r, worker_a, 1000, timeout);
    EXPECT_FALSE(abandon_start(r, worker_b));
    EXPECT_TRUE(abandon_start(r, worker_a));
    EXPECT_EQ(r.state.load(), app_state::cold);
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

namespace {

void make_ready(app_record& r, std::uint64_t at_ms) {
    on_request(r, worker_a, at_ms, timeout);
    on_ready(r, 1, at_ms);
}

constexpr std::uint64_t idle = 60000;
constexpr std::uint64_t stop_timeout = 30000;

TEST(IdleStop, NotBeforeTheIdleTimeout) {
    app_record r;
    make_ready(r, 1000);
    EXPECT_FALSE(begin_stop(r, worker_a, 1000 + idle - 1, idle, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_TRUE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::stopping);
    EXPECT_EQ(r.counters.idle_stops.load(), 1u);
}

TEST(IdleStop, MeasuredFromTheEndOfTheLastRequest) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(warm_enter(r));
    warm_leave(r, 50000);
    EXPECT_FALSE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_TRUE(begin_stop(r, worker_a, 50000 + idle, idle, stop_timeout));
}

TEST(IdleStop, NeverWithARequestInFlight) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(warm_enter(r)); // e.g. an open WebSocket
    EXPECT_FALSE(looks_idle(r, 1000 + 10 * idle, idle));
    EXPECT_FALSE(begin_stop(r, worker_a, 1000 + 10 * idle, idle, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::ready);
}

TEST(IdleStop, ZeroIdleTimeoutMeansNeverStop) {
    app_record r;
    make_ready(r, 1000);
    EXPECT_FALSE(begin_stop(r, worker_a, 1000 + 100 * idle, 0, stop_timeout));
}

TEST(IdleStop, AClockBehindTheLastActivityIsNotIdle) {
    app_record r;
    make_ready(r, 1000);
    r.last_active_ms.store(5000); // another worker's cached clock was ahead
    EXPECT_FALSE(looks_idle(r, 4000, idle));
}

TEST(IdleStop, RequestsDuringTheStopAreHeldThenStartANewGeneration) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_FALSE(warm_enter(r));
    EXPECT_EQ(on_request(r, worker_b, 1000 + idle + 5, timeout), request_action::hold);
    EXPECT_FALSE(on_stopped(r, 99));
    EXPECT_TRUE(on_stopped(r, 1));
    EXPECT_EQ(r.state.load(), app_state::cold);
    EXPECT_EQ(on_request(r, worker_b, 1000 + idle + 10, timeout), request_action::hold_and_start);
    EXPECT_EQ(r.gen.load(), 2u);
}

TEST(IdleStop, AStopThatNeverReportsBackIsTakenOver) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_EQ(on_request(r, worker_b, 1000 + idle + stop_timeout, timeout),
              request_action::hold_and_start);
}

// The boundary race: a request that passed warm_enter() before the stop keeps the app.
TEST(IdleStop, RequestThatEnteredFirstCallsTheStopOff) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(warm_enter(r));
    EXPECT_FALSE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::ready);
    warm_leave(r, 1000 + idle);
}

} // namespace

namespace {

// Two threads race at the idle boundary: one keeps sending warm requests, the other keeps
// trying to stop the app. Whenever a stop begins, no request may be inside the app.
TEST(IdleStop, NoRequestIsEverInsideAnAppBeingStopped) {
    app_record r;
    make_ready(r, 0);
    std::atomic<int> inside{0};
    std::atomic<bool> done{false};
    std::atomic<long> entered{0};

    std::atomic<bool> running_requests{false};
    std::thread requests([&] {
        running_requests.store(true);
        while (!done.load()) {
            if (warm_enter(r)) {
                inside.fetch_add(1);
                entered.fetch_add(1);
                inside.fetch_sub(1);
                warm_leave(r, 0);
            }
        }
    });
    while (!running_requests.load()) {
        std::this_thread::yield();
    }

    // Until both sides have won many times (bounded, for a busy machine).
    long stops = 0;
    long violations = 0;
    for (long i = 0; (stops < 1000 || entered.load() < 1000) && i < 50'000'000; i++) {
        if (begin_stop(r, worker_a, 1, 1, stop_timeout)) {
            stops++;
            violations += inside.load() != 0;
            // STOPPED, then the next start: the app is ready again.
            on_stopped(r, r.gen.load());
            r.state.store(app_state::ready);
        }
        if (i % 64 == 0) {
            std::this_thread::yield();
        }
    }
    done.store(true);
    requests.join();

    EXPECT_EQ(violations, 0);
    EXPECT_GT(stops, 0);
    EXPECT_GT(entered.load(), 0);
    EXPECT_EQ(r.in_flight.load(), 0u);
}

} // namespace

namespace {

constexpr std::uint64_t frozen_timeout = 3600000;

TEST(Freeze, IdleAppFreezesInsteadOfStopping) {
    app_record r;
    make_ready(r, 1000);
    EXPECT_FALSE(begin_freeze(r, worker_a, 1000 + idle - 1, idle, stop_timeout));
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::freezing);
    EXPECT_FALSE(warm_enter(r));
    EXPECT_EQ(on_request(r, worker_b, 1000 + idle + 1, timeout), request_action::hold);
    EXPECT_FALSE(on_frozen(r, 9));
    EXPECT_TRUE(on_frozen(r, 1));
    EXPECT_EQ(r.state.load(), app_state::frozen);
    EXPECT_TRUE(running(r)); // a frozen app still holds its memory
}

TEST(Freeze, ARequestThawsAFrozenAppThroughStart) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    ASSERT_TRUE(on_frozen(r, 1));
    EXPECT_FALSE(warm_enter(r));
    EXPECT_EQ(on_request(r, worker_b, 90000, timeout), request_action::hold_and_start);
    EXPECT_EQ(r.gen.load(), 2u);
    EXPECT_TRUE(on_ready(r, 2, 90010));
    EXPECT_TRUE(warm_enter(r));
}

TEST(Freeze, AFailedFreezeLeavesTheAppReady) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_TRUE(on_freeze_failed(r, 1));
    EXPECT_EQ(r.state.load(), app_state::ready);
}

TEST(Freeze, AFrozenAppIsStoppedAfterTheSecondTimeout) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    ASSERT_TRUE(on_frozen(r, 1));
    EXPECT_FALSE(
        begin_frozen_stop(r, worker_a, 1000 + frozen_timeout - 1, frozen_timeout, stop_timeout));
    EXPECT_FALSE(begin_frozen_stop(r, worker_a, 1000 + 10 * frozen_timeout, 0, stop_timeout));
    EXPECT_TRUE(
        begin_frozen_stop(r, worker_a, 1000 + frozen_timeout, frozen_timeout, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::stopping);
    EXPECT_TRUE(on_stopped(r, 1));
    EXPECT_EQ(r.state.load(), app_state::cold);
}

TEST(Freeze, AFrozenAppCanBeEvicted) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    ASSERT_TRUE(on_frozen(r, 1));
    EXPECT_TRUE(evictable(r));
    EXPECT_TRUE(begin_eviction(r, worker_b, 70000, stop_timeout));
    EXPECT_EQ(r.state.load(), app_state::stopping);
}

TEST(Freeze, DownMakesAFrozenAppCold) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_freeze(r, worker_a, 1000 + idle, idle, stop_timeout));
    ASSERT_TRUE(on_frozen(r, 1));
    EXPECT_TRUE(on_down(r));
    EXPECT_EQ(r.state.load(), app_state::cold);
}

} // namespace

namespace {

TEST(SharedApps, LeaseRunsFromTheEndOfTheLastRequest) {
    app_record r;
    make_ready(r, 1000);
    EXPECT_EQ(use_lease(r, 1000, idle), idle);
    EXPECT_EQ(use_lease(r, 1000 + 250, idle), idle - 250);
    EXPECT_EQ(use_lease(r, 1000 + idle, idle), 0u);
    ASSERT_TRUE(warm_enter(r));
    EXPECT_EQ(use_lease(r, 1000 + 10 * idle, idle), idle); // in flight: the whole timeout
    warm_leave(r, 5000);
    EXPECT_EQ(use_lease(r, 5000, 0), 24 * 3600 * 1000ULL); // never stopped here
}

TEST(SharedApps, ARefusedStopLeavesTheAppReady) {
    app_record r;
    make_ready(r, 1000);
    ASSERT_TRUE(begin_stop(r, worker_a, 1000 + idle, idle, stop_timeout));
    EXPECT_FALSE(on_stop_refused(r, 7));
    EXPECT_TRUE(on_stop_refused(r, 1));
    EXPECT_EQ(r.state.load(), app_state::ready);
    EXPECT_TRUE(warm_enter(r));
}

} // namespace

// ---- counts per worker process (a worker that dies takes its requests with it) -------------

namespace {

// Pretend processes for the slot table: alive unless listed as dead.
std::int64_t dead_pids[4];

bool fake_alive(std::int64_t pid) {
    for (std::int64_t d : dead_pids) {
        if (d == pid) {
            return false;
        }
    }
    return true;
}

struct as_worker {
    explicit as_worker(std::size_t slot) : saved(this_worker_slot) { this_worker_slot = slot; }
    ~as_worker() { this_worker_slot = saved; }
    as_worker(const as_worker&) = delete;
    as_worker& operator=(const as_worker&) = delete;
    std::size_t saved;
};

} // namespace

TEST(WorkerSlots, EachWorkerCountsInItsOwnSlotAndReadersSeeTheSum) {
    app_record r;
    {
        as_worker a(1);
        r.in_flight.fetch_add(2);
        r.held.fetch_add(1);
    }
    {
        as_worker b(2);
        r.in_flight.fetch_add(1);
    }
    EXPECT_EQ(r.in_flight.load(), 3u);
    EXPECT_EQ(r.held.load(), 1u);
    EXPECT_EQ(r.in_flight.in_slot(1), 2u);
}

TEST(WorkerSlots, ADeadWorkersRequestsAreReleasedAndTheSurvivorsAreKept) {
    worker_slot_table t;
    app_record r;
    bool reclaimed = false;
    std::size_t a = claim_worker_slot(t, 101, 1, fake_alive, reclaimed);
    std::size_t b = claim_worker_slot(t, 102, 1, fake_alive, reclaimed);
    ASSERT_NE(a, b);
    {
        as_worker w(a);
        r.in_flight.fetch_add(1); // a long request in flight
        r.held.fetch_add(2);      // and two held
    }
    {
        as_worker w(b);
        r.in_flight.fetch_add(1);
    }
    r.state.store(app_state::ready);
    EXPECT_FALSE(looks_idle(r, 100000, 1000));

    dead_pids[0] = 101; // SIGKILL
    std::uint64_t dead = reap_dead_workers(t, fake_alive);
    EXPECT_EQ(dead, std::uint64_t{1} << a);
    EXPECT_EQ(clear_worker_counts(r, a), 3u);
    EXPECT_EQ(r.in_flight.load(), 1u) << "the survivor's request is still counted";
    EXPECT_EQ(r.held.load(), 0u) << "the hold queue places are free again";
    EXPECT_EQ(reap_dead_workers(t, fake_alive), 0u) << "reaped once";
    {
        as_worker w(b);
        warm_leave(r, 100000);
    }
    EXPECT_TRUE(looks_idle(r, 200000, 1000)) << "the app idle-stops again";
    dead_pids[0] = 0;
}

TEST(WorkerSlots, ANewWorkerTakesAFreeSlotOrADeadWorkersAndSaysSo) {
    worker_slot_table t;
    bool reclaimed = true;
    EXPECT_EQ(claim_worker_slot(t, 200, 1, fake_alive, reclaimed), 1u);
    EXPECT_FALSE(reclaimed);
    EXPECT_EQ(this_worker_slot, 1u);
    // every other slot taken by live processes
    for (std::size_t i = 2; i < worker_slots; ++i) {
        t.pid[i].store(static_cast<std::int64_t>(1000 + i));
    }
    EXPECT_EQ(claim_worker_slot(t, 300, 1, fake_alive, reclaimed), 0u) << "the shared slot";
    EXPECT_FALSE(reclaimed);
    dead_pids[1] = 1005;
    EXPECT_EQ(claim_worker_slot(t, 301, 1, fake_alive, reclaimed), 5u);
    EXPECT_TRUE(reclaimed) << "the dead owner's counts must be cleared";
    EXPECT_EQ(t.pid[5].load(), 301);
    release_worker_slot(t, 5);
    EXPECT_EQ(t.pid[5].load(), 0);
    dead_pids[1] = 0;
    this_worker_slot = 0;
}

TEST(WorkerSlots, AReusedPidDoesNotInheritTheDeadOwnersCounts) {
    worker_slot_table t;
    bool reclaimed = false;
    t.pid[1].store(400); // a worker that died; its pid now belongs to the new worker
    EXPECT_EQ(claim_worker_slot(t, 400, 1, fake_alive, reclaimed), 1u);
    EXPECT_TRUE(reclaimed);
    this_worker_slot = 0;
}

TEST(WorkerSlots, AStopSeesARequestInAnotherWorkersSlot) {
    app_record r;
    r.state.store(app_state::ready);
    r.last_active_ms.store(0);
    {
        as_worker w(7);
        EXPECT_TRUE(warm_enter(r));
    }
    as_worker stopper(3);
    EXPECT_FALSE(begin_stop(r, 1, 100000, 1000, 5000));
    EXPECT_EQ(r.state.load(), app_state::ready);
}

TEST(WorkerSlots, ARecordARemovedAppLeftIsKeptWhileAWorkerOfAnOlderConfigurationLives) {
    worker_slot_table t;
    bool reclaimed = false;
    claim_worker_slot(t, 500, 1, fake_alive, reclaimed); // configuration 1
    claim_worker_slot(t, 501, 2, fake_alive, reclaimed); // a reload: configuration 2
    EXPECT_TRUE(older_workers_alive(t, 2, fake_alive)) << "500 may still use the record";
    EXPECT_FALSE(older_workers_alive(t, 1, fake_alive));
    dead_pids[2] = 500; // the old worker finished and exited (or died)
    EXPECT_FALSE(older_workers_alive(t, 2, fake_alive));
    dead_pids[2] = 0;
    this_worker_slot = 0;
}

TEST(WorkerSlots, WorkersThatShareSlotZeroKeepEveryLaterRemovedRecord) {
    worker_slot_table t;
    bool reclaimed = false;
    for (std::size_t i = 1; i < worker_slots; ++i) {
        t.pid[i].store(static_cast<std::int64_t>(2000 + i));
        t.config[i].store(5);
    }
    EXPECT_EQ(claim_worker_slot(t, 600, 4, fake_alive, reclaimed), 0u);
    EXPECT_TRUE(older_workers_alive(t, 5, fake_alive));
    this_worker_slot = 0;
}

TEST(Orphans, ARunningRemovedAppIsStoppedOnceNothingUsesItAndFreedOnceItsStopIsSent) {
    app_record r;
    r.state.store(app_state::ready);
    {
        as_worker w(1);
        r.held.fetch_add(1);
        EXPECT_FALSE(begin_orphan_stop(r, 9, 1000, 5000)) << "a request waits for it";
        r.held.fetch_sub(1);
        EXPECT_TRUE(warm_enter(r));
        EXPECT_FALSE(begin_orphan_stop(r, 9, 1000, 5000)) << "a request is in flight";
        warm_leave(r, 1000);
    }
    EXPECT_FALSE(orphan_freeable(r)) << "it runs: stop it first";
    EXPECT_TRUE(begin_orphan_stop(r, 9, 1000, 5000));
    EXPECT_EQ(r.state.load(), app_state::stopping);
    EXPECT_TRUE(orphan_freeable(r)) << "its STOP is with helperd";
    EXPECT_FALSE(begin_orphan_stop(r, 9, 2000, 5000)) << "its STOP may still be answered";
    EXPECT_TRUE(begin_orphan_stop(r, 9, 6000, 5000)) << "no answer by the deadline: again";
    EXPECT_TRUE(on_stopped(r, r.gen.load()));
    EXPECT_TRUE(orphan_freeable(r));
    EXPECT_FALSE(begin_orphan_stop(r, 9, 7000, 5000)) << "cold: nothing to stop";
}
