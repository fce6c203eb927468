// ondemand_max_memory's pieces that need no systemd: the SUBSCRIBE and MEMORY lines
// (docs/PROTOCOL.md), helperd's measurement (helperd/memory.h: which figure, the /proc and
// cgroup parsing, the unit's cgroup as helperd sees it) and the module's victims under a
// budget (ngx_module/ondemand_policy.h).
#include "memory.h"
#include "ondemand_policy.h"
#include "ondemand_protocol.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace proto = ondemand::proto;
using namespace ondemand::helperd;
using ondemand::app_record;
using ondemand::app_state;
using ondemand::eviction_choice;
using ondemand::eviction_limits;
using ondemand::victim_chooser;

namespace {

constexpr std::uint64_t mib = 1024 * 1024;

std::string format_line(const proto::message& m) {
    std::array<char, proto::max_line_length + 2> buf{};
    std::size_t n = proto::format(m, buf.data(), buf.size());
    return std::string(buf.data(), n);
}

void running(app_record& r, std::uint64_t last_active, std::uint64_t memory,
             app_state s = app_state::ready) {
    r.state.store(s);
    r.last_active_ms.store(last_active);
    r.memory_bytes.store(memory);
    r.memory_peak.store(memory);
}

} // namespace

TEST(MemoryProtocol, SubscribeAndMemoryRoundTrip) {
    for (std::string line : {"SUBSCRIBE memory", "MEMORY blog 41943040", "MEMORY a.b-c 0",
                             "MEMORY blog 9007199254740992"}) {
        proto::parse_result r = proto::parse(line);
        ASSERT_TRUE(r.ok) << line << ": " << r.error;
        EXPECT_EQ(format_line(r.msg), line + "\n");
    }
    proto::parse_result r = proto::parse("MEMORY blog 41943040");
    EXPECT_EQ(r.msg.kind, proto::verb::memory);
    EXPECT_EQ(r.msg.app, "blog");
    EXPECT_EQ(r.msg.memory_bytes, 40 * mib);
    EXPECT_EQ(proto::verb_name(proto::verb::subscribe), "SUBSCRIBE");
    EXPECT_EQ(proto::verb_name(proto::verb::memory), "MEMORY");
}

TEST(MemoryProtocol, RefusesMalformedLines) {
    auto refused = [](const char* line, std::string_view why) {
        proto::parse_result r = proto::parse(line);
        EXPECT_FALSE(r.ok) << line;
        EXPECT_EQ(std::string_view(r.error != nullptr ? r.error : ""), why) << line;
    };
    refused("SUBSCRIBE", "SUBSCRIBE needs: topic");
    refused("SUBSCRIBE cpu", "unknown subscription topic");
    refused("SUBSCRIBE memory now", "unexpected extra field");
    refused("MEMORY blog", "MEMORY needs: app bytes");
    refused("MEMORY blog 012", "invalid memory size");
    refused("MEMORY blog -1", "invalid memory size");
    refused("MEMORY blog 9007199254740993", "invalid memory size");
    refused("MEMORY .blog 1", "invalid app name");
    refused("MEMORY blog 1 2", "unexpected extra field");

    proto::message m;
    m.kind = proto::verb::memory;
    m.app = "blog";
    m.memory_bytes = proto::max_memory_bytes + 1;
    EXPECT_EQ(format_line(m), "");
    m.kind = proto::verb::subscribe;
    m.topic = "cpu";
    EXPECT_EQ(format_line(m), "");
}

TEST(MemoryMeasure, MemoryCurrentWinsWhenSystemdHasIt) {
    int fallbacks = 0;
    auto fallback = [&]() -> std::optional<std::uint64_t> {
        fallbacks++;
        return 7;
    };
    EXPECT_EQ(unit_memory(42 * mib, fallback), 42 * mib);
    EXPECT_EQ(fallbacks, 0);
    EXPECT_EQ(unit_memory(0, fallback), 0u); // set, and zero: still systemd's figure
    EXPECT_EQ(unit_memory(memory_not_set, fallback), 7u);
    EXPECT_EQ(fallbacks, 1);
    EXPECT_EQ(unit_memory(memory_not_set, [] { return std::optional<std::uint64_t>{}; }),
              std::nullopt);
}

TEST(MemoryMeasure, ReadsPssAndRss) {
    std::string rollup = "55d0c0a00000-7ffd7b9f2000 ---p 00000000 00:00 0   [rollup]\n"
                         "Rss:               42240 kB\n"
                         "Pss:               41321 kB\n"
                         "Pss_Anon:          40980 kB\n";
    EXPECT_EQ(parse_smaps_pss(rollup), 41321u * 1024);
    EXPECT_EQ(parse_smaps_pss("Rss: 1 kB\n"), std::nullopt);
    EXPECT_EQ(parse_smaps_pss("Pss: x kB\n"), std::nullopt);
    // /proc/PID/status separates with tabs
    EXPECT_EQ(parse_status_rss("VmRSS:      42240 kB\n"), 42240u * 1024);
    EXPECT_EQ(parse_status_rss("Name: kthreadd\n"), std::nullopt);
}

TEST(MemoryMeasure, FindsTheCgroup2PathAndMount) {
    EXPECT_EQ(parse_cgroup2_path("12:memory:/x\n1:name=systemd:/y\n0::/sb/app.slice/a.service\n"),
              "/sb/app.slice/a.service");
    EXPECT_EQ(parse_cgroup2_path("1:name=systemd:/y\n"), std::nullopt);
    std::string mountinfo =
        "25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
    auto m = parse_cgroup2_mount(mountinfo);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->root, "/");
    EXPECT_EQ(m->mountpoint, "/sys/fs/cgroup/unified");
    EXPECT_EQ(parse_cgroup2_mount("25 1 0:23 / /sys rw - sysfs sysfs rw\n"), std::nullopt);
}

TEST(MemoryMeasure, TheUnitsCgroupAsHelperdSeesIt) {
    cgroup2_mount host{"/", "/sys/fs/cgroup/unified"};
    // The manager runs in a cgroup namespace (the test sandbox): its ControlGroup is relative.
    EXPECT_EQ(unit_cgroup_dir(host, "/ondemand-sb-1/app.slice/ondemand-a.service",
                              "/app.slice/ondemand-a.service"),
              "/sys/fs/cgroup/unified/ondemand-sb-1/app.slice/ondemand-a.service");
    // The main process sits below the unit's cgroup (a delegated unit).
    EXPECT_EQ(unit_cgroup_dir(host, "/sb/app.slice/a.service/payload", "/app.slice/a.service"),
              "/sys/fs/cgroup/unified/sb/app.slice/a.service");
    // Same namespace.
    EXPECT_EQ(unit_cgroup_dir({"/", "/sys/fs/cgroup"}, "/system.slice/a.service",
                              "/system.slice/a.service"),
              "/sys/fs/cgroup/system.slice/a.service");
    // Not a whole path component: not the unit's cgroup.
    EXPECT_EQ(unit_cgroup_dir(host, "/sb/app.slice/a.service2", "/app.slice/a.service"),
              std::nullopt);
    // No ControlGroup: the main process's cgroup.
    EXPECT_EQ(unit_cgroup_dir(host, "/sb/x.service", ""), "/sys/fs/cgroup/unified/sb/x.service");
    // A mount that shows only part of the tree.
    EXPECT_EQ(unit_cgroup_dir({"/sb", "/cg"}, "/sb/app.slice/a.service", "/app.slice/a.service"),
              "/cg/app.slice/a.service");
    EXPECT_EQ(unit_cgroup_dir({"/other", "/cg"}, "/sb/a.service", "/a.service"), std::nullopt);
}

TEST(MemoryMeasure, ThisProcessHasMemory) {
    // The fallback's reading of a real cgroup: the one this test runs in.
    auto text = [](const char* path) {
        std::string s;
        if (FILE* f = std::fopen(path, "r")) {
            char buf[4096];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
                s.append(buf, n);
            }
            std::fclose(f);
        }
        return s;
    };
    auto path = parse_cgroup2_path(text("/proc/self/cgroup"));
    auto mount = parse_cgroup2_mount(text("/proc/self/mountinfo"));
    if (!path || !mount) {
        GTEST_SKIP() << "no cgroup2 here";
    }
    auto dir = unit_cgroup_dir(*mount, *path, "");
    ASSERT_TRUE(dir);
    auto bytes = cgroup_memory(*dir);
    ASSERT_TRUE(bytes);
    EXPECT_GT(*bytes, 1 * mib);
}

TEST(MemoryBudget, UnderTheBudgetThereIsRoom) {
    std::array<app_record, 3> apps;
    running(apps[0], 10, 40 * mib);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], false, i == 2, ondemand::memory_in_use(apps[i], 0));
    }
    auto choice = c.choose(eviction_limits{0, 100 * mib, 40 * mib});
    EXPECT_TRUE(choice.room);
    EXPECT_EQ(choice.memory_in_use, 40 * mib);
}

TEST(MemoryBudget, OverTheBudgetTheLeastRecentlyUsedIdleAppsAreStoppedUntilItFits) {
    std::array<app_record, 5> apps;
    running(apps[0], 30, 30 * mib);
    running(apps[1], 10, 20 * mib);
    running(apps[2], 20, 25 * mib, app_state::frozen); // frozen apps hold memory too
    running(apps[3], 5, 10 * mib);
    apps[3].in_flight.fetch_add(1); // busy: never stopped
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], false, i == 4, ondemand::memory_in_use(apps[i], 0));
    }
    // 85 MiB in use, 40 expected, budget 90: 35 to free: app 1 (20) then app 2 (25).
    auto choice = c.choose(eviction_limits{0, 90 * mib, 40 * mib});
    EXPECT_FALSE(choice.room);
    ASSERT_EQ(choice.nvictims, 2u);
    EXPECT_EQ(choice.victims[0], 1u);
    EXPECT_EQ(choice.victims[1], 2u);
    EXPECT_EQ(choice.victim, 1u);
    EXPECT_EQ(choice.freed_bytes, 45 * mib);
    EXPECT_EQ(choice.blocked, eviction_choice::limit::none);
}

TEST(MemoryBudget, NothingIsStoppedWhenTheIdleAppsCannotFreeEnough) {
    std::array<app_record, 4> apps;
    running(apps[0], 10, 40 * mib);
    running(apps[1], 20, 40 * mib); // keep_warm below
    running(apps[2], 5, 10 * mib);
    apps[2].held.fetch_add(1);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], i == 1, i == 3, ondemand::memory_in_use(apps[i], 0));
    }
    auto choice = c.choose(eviction_limits{0, 100 * mib, 60 * mib});
    EXPECT_FALSE(choice.room);
    EXPECT_EQ(choice.nvictims, 0u);
    EXPECT_EQ(choice.victim, eviction_choice::no_victim);
    EXPECT_EQ(choice.blocked, eviction_choice::limit::memory);
    EXPECT_EQ(choice.memory_in_use, 90 * mib);
    EXPECT_EQ(choice.freed_bytes, 40 * mib); // all the idle apps could free
}

TEST(MemoryBudget, BothLimitsShareOneLeastRecentlyUsedRule) {
    std::array<app_record, 4> apps;
    running(apps[0], 30, 10 * mib);
    running(apps[1], 10, 10 * mib);
    running(apps[2], 20, 50 * mib);
    victim_chooser c;
    for (std::size_t i = 0; i < apps.size(); i++) {
        c.consider(i, apps[i], false, i == 3, ondemand::memory_in_use(apps[i], 0));
    }
    // max_running 3 frees one slot (app 1, 10 MiB); 70 in use + 20 expected against 70 needs
    // 20 MiB: app 2 too.
    auto choice = c.choose(eviction_limits{3, 70 * mib, 20 * mib});
    ASSERT_EQ(choice.nvictims, 2u);
    EXPECT_EQ(choice.victims[0], 1u);
    EXPECT_EQ(choice.victims[1], 2u);
    // The count alone: one victim.
    EXPECT_EQ(c.choose(3).nvictims, 1u);
}

TEST(MemoryBudget, WhatAnAppCountsFor) {
    app_record r;
    EXPECT_EQ(ondemand::memory_in_use(r, 32 * mib), 0u); // cold
    EXPECT_EQ(ondemand::memory_expected(r, 32 * mib), 32 * mib);
    r.state.store(app_state::starting);
    EXPECT_EQ(ondemand::memory_in_use(r, 32 * mib), 32 * mib); // no figure yet: expected
    r.memory_peak.store(48 * mib);
    EXPECT_EQ(ondemand::memory_in_use(r, 32 * mib), 48 * mib); // its largest figure
    EXPECT_EQ(ondemand::memory_expected(r, 32 * mib), 48 * mib);
    r.memory_bytes.store(40 * mib);
    EXPECT_EQ(ondemand::memory_in_use(r, 32 * mib), 40 * mib); // the last figure
    r.state.store(app_state::stopping);
    EXPECT_EQ(ondemand::memory_in_use(r, 32 * mib), 0u); // its stop frees it
}
