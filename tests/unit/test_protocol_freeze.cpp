// FREEZE / FROZEN: the verbs of freeze-instead-of-stop (docs/lifecycle.md).
#include "ondemand_protocol.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace proto = ondemand::proto;

namespace {

std::string format_line(const proto::message& m) {
    std::array<char, proto::max_line_length + 1> buf{};
    std::size_t n = proto::format(m, buf.data(), buf.size());
    return std::string(buf.data(), n);
}

TEST(ProtocolFreeze, FreezeRoundTrips) {
    auto r = proto::parse("FREEZE blog 3 ondemand-blog.service");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.kind, proto::verb::freeze);
    EXPECT_EQ(r.msg.app, "blog");
    EXPECT_EQ(r.msg.gen, 3u);
    EXPECT_EQ(r.msg.unit, "ondemand-blog.service");
    EXPECT_EQ(format_line(r.msg), "FREEZE blog 3 ondemand-blog.service\n");
}

TEST(ProtocolFreeze, FrozenRoundTrips) {
    auto r = proto::parse("FROZEN blog 3");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.kind, proto::verb::frozen);
    EXPECT_EQ(format_line(r.msg), "FROZEN blog 3\n");
}

TEST(ProtocolFreeze, FreezeNeedsAUnit) {
    auto r = proto::parse("FREEZE blog 3");
    EXPECT_FALSE(r.ok);
    EXPECT_STREQ(r.error, "FREEZE needs: app gen unit");
    EXPECT_FALSE(proto::parse("FREEZE blog 3 not-a-unit").ok);
    EXPECT_FALSE(proto::parse("FROZEN blog").ok);
    EXPECT_FALSE(proto::parse("FROZEN blog 3 extra").ok);
}

} // namespace
