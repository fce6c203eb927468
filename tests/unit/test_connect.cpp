// The module's own connect() to an app (ngx_module/ondemand_connect.h): which errno retries,
// which makes the app cold, and the capped backoff.
#include "ondemand_connect.h"

#include <gtest/gtest.h>

#include <cerrno>

using ondemand::classify_connect;
using ondemand::connect_verdict;
using ondemand::max_connect_backoff_ms;
using ondemand::next_connect_backoff;

TEST(Connect, AFullBacklogIsRetriedAndNeverMakesTheAppCold) {
    EXPECT_EQ(classify_connect(EAGAIN), connect_verdict::retry);
    EXPECT_EQ(classify_connect(EWOULDBLOCK), connect_verdict::retry);
}

TEST(Connect, ARefusedOrMissingSocketMeansTheAppIsGone) {
    EXPECT_EQ(classify_connect(ECONNREFUSED), connect_verdict::gone);
    EXPECT_EQ(classify_connect(ENOENT), connect_verdict::gone);
}

TEST(Connect, OtherErrorsFailTheRequestOnly) {
    EXPECT_EQ(classify_connect(0), connect_verdict::connected);
    for (int err : {EACCES, ETIMEDOUT, EINPROGRESS, EMFILE, ENOTDIR, EINTR}) {
        EXPECT_EQ(classify_connect(err), connect_verdict::failed) << err;
    }
}

TEST(Connect, BackoffStartsAtOneMsDoublesAndIsCapped) {
    std::uint64_t b = next_connect_backoff(0);
    EXPECT_EQ(b, 1U);
    std::uint64_t seen[] = {2, 4, 8, 16, 32, 32, 32};
    for (std::uint64_t want : seen) {
        b = next_connect_backoff(b);
        EXPECT_EQ(b, want);
    }
    EXPECT_EQ(next_connect_backoff(max_connect_backoff_ms), max_connect_backoff_ms);
    EXPECT_EQ(next_connect_backoff(1000), max_connect_backoff_ms);
}

TEST(Connect, TheRetriesWithinAConnectTimeoutAreBounded) {
    // 60 s (nginx's default proxy_connect_timeout) at the cap is under 2,000 attempts
    std::uint64_t waited = 0;
    std::uint64_t attempts = 0;
    for (std::uint64_t b = next_connect_backoff(0); waited < 60000; b = next_connect_backoff(b)) {
        waited += b;
        attempts++;
    }
    EXPECT_LE(attempts, 60000 / max_connect_backoff_ms + 6);
}
