// The module's worker policies (ngx_module/ondemand_policy.h): the eviction victim under
// ondemand_max_running, and the idle scan interval.
#include "ondemand_policy.h"

#include <gtest/gtest.h>

#include <array>

using ondemand::app_record;
using ondemand::app_state;
using ondemand::eviction_choice;
using ondemand::idle_scan_interval;
using ondemand::victim_chooser;

namespace {

void ready(app_record& r, std::uint64_t last_active) {
    r.state.store(app_state::ready);
    r.last_active_ms.store(last_active);
}

TEST(Eviction, BelowTheCapThereIsRoomAndNothingIsStopped) {
    std::array<app_record, 3> apps;
    ready(apps[0], 10);
    ready(apps[1], 20);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], false, i == 2);
    }
    auto choice = c.choose(3);
    EXPECT_TRUE(choice.room);
    EXPECT_EQ(choice.victim, eviction_choice::no_victim);
}

TEST(Eviction, AtTheCapTheLeastRecentlyUsedIdleAppIsTheVictim) {
    std::array<app_record, 4> apps;
    ready(apps[0], 30);
    ready(apps[1], 10);
    ready(apps[2], 20);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], false, i == 3);
    }
    auto choice = c.choose(3);
    EXPECT_FALSE(choice.room);
    EXPECT_EQ(choice.victim, 1u);
}

TEST(Eviction, AppsInUseHeldForStartingOrKeepWarmAreNeverVictims) {
    std::array<app_record, 6> apps;
    ready(apps[0], 1);
    apps[0].in_flight.fetch_add(1); // a request is proxied to it
    ready(apps[1], 2);
    apps[1].held.fetch_add(1); // a request waits for it somewhere
    apps[2].state.store(app_state::starting);
    ready(apps[3], 3); // keep_warm
    apps[4].state.store(app_state::stopping);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], i == 3, i == 5);
    }
    auto choice = c.choose(5);
    EXPECT_FALSE(choice.room);
    EXPECT_EQ(choice.victim, eviction_choice::no_victim);
}

TEST(Eviction, AFrozenAppCountsAsRunningAndCanBeTheVictim) {
    std::array<app_record, 2> apps;
    ready(apps[0], 50);
    apps[1].state.store(app_state::frozen);
    apps[1].last_active_ms.store(5);
    victim_chooser c;
    c.consider(0, apps[0], false, false);
    c.consider(1, apps[1], false, false);
    auto choice = c.choose(2);
    EXPECT_EQ(choice.victim, 1u);
}

TEST(Eviction, TheRequestingAppIsNeverItsOwnVictim) {
    std::array<app_record, 1> apps;
    ready(apps[0], 1);
    victim_chooser c;
    c.consider(0, apps[0], false, true);
    EXPECT_EQ(c.choose(1).victim, eviction_choice::no_victim);
}

TEST(IdleScan, AnAppThatIsNeverStoppedNeedsNoScan) {
    EXPECT_EQ(idle_scan_interval(0, 0, false, 0), 0u);
    EXPECT_EQ(idle_scan_interval(300, 0, true, 1000), 300u);
}

TEST(IdleScan, TheIntervalIsAQuarterOfTheIdleTimeoutBetween50MsAnd1s) {
    EXPECT_EQ(idle_scan_interval(0, 2000, false, 0), 500u);
    EXPECT_EQ(idle_scan_interval(0, 300000, false, 0), 1000u);
    EXPECT_EQ(idle_scan_interval(0, 100, false, 0), 50u);
}

TEST(IdleScan, AFreezingAppAlsoScansForAQuarterOfItsFrozenTimeout) {
    EXPECT_EQ(idle_scan_interval(0, 300000, true, 2000), 500u);
    EXPECT_EQ(idle_scan_interval(0, 300000, true, 0), 1000u); // frozen forever
    EXPECT_EQ(idle_scan_interval(0, 300000, true, 40), 50u);
    EXPECT_EQ(idle_scan_interval(0, 300000, false, 2000), 1000u); // no freeze
}

TEST(IdleScan, TheShortestIntervalOfAllAppsWins) {
    std::uint64_t i = 0;
    i = idle_scan_interval(i, 300000, false, 0);
    i = idle_scan_interval(i, 1000, false, 0);
    i = idle_scan_interval(i, 0, false, 0);
    i = idle_scan_interval(i, 8000, false, 0);
    EXPECT_EQ(i, 250u);
}

} // namespace
