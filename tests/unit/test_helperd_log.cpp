// helperd's log limiter (helperd/log.h): a peer's junk cannot flood the journal.
#include "log.h"

#include <gtest/gtest.h>

using namespace ondemand::helperd;
using namespace std::chrono_literals;

TEST(LogLimiter, LetsABurstThroughThenHoldsBackUntilTheWindowEnds) {
    log_limiter limit(3, 10s);
    auto t0 = log_limiter::clock::time_point{} + 1h;
    std::uint64_t held = 99;
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(limit.allow(t0 + std::chrono::milliseconds(i), held));
        EXPECT_EQ(held, 0u);
    }
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(limit.allow(t0 + 9s, held));
    }
    EXPECT_EQ(limit.held_back(), 5u);
    EXPECT_TRUE(limit.allow(t0 + 10s, held)) << "a new window";
    EXPECT_EQ(held, 5u) << "the first line let through counts what was held back";
    EXPECT_EQ(limit.held_back(), 0u);
}

TEST(LogLimiter, TheNoteNamesTheLinesHeldBack) {
    EXPECT_EQ(held_back_note(0), "");
    EXPECT_EQ(held_back_note(4990), " (4990 similar lines not logged)");
}
