// The lifecycle verbs: FREEZE / FROZEN (freeze instead of stop), USE and STOP ... force
// (stops refused while another nginx uses the app). See docs/lifecycle.md.
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

namespace {

TEST(ProtocolUse, UseRoundTrips) {
    auto r = proto::parse("USE blog 4 300000");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.kind, proto::verb::use);
    EXPECT_EQ(r.msg.app, "blog");
    EXPECT_EQ(r.msg.gen, 4u);
    EXPECT_EQ(r.msg.lease_ms, 300000u);
    EXPECT_EQ(format_line(r.msg), "USE blog 4 300000\n");
}

TEST(ProtocolUse, UseNeedsAPositiveLease) {
    EXPECT_STREQ(proto::parse("USE blog 4").error, "USE needs: app gen lease_ms");
    EXPECT_STREQ(proto::parse("USE blog 4 0").error, "invalid lease");
    EXPECT_STREQ(proto::parse("USE blog 4 5m").error, "invalid lease");
    EXPECT_FALSE(proto::parse("USE blog 4 10 extra").ok);
}

TEST(ProtocolUse, StopMayBeForced) {
    auto plain = proto::parse("STOP blog 4 ondemand-blog.service");
    ASSERT_TRUE(plain.ok);
    EXPECT_FALSE(plain.msg.force);
    auto forced = proto::parse("STOP blog 4 ondemand-blog.service force");
    ASSERT_TRUE(forced.ok) << forced.error;
    EXPECT_TRUE(forced.msg.force);
    EXPECT_EQ(format_line(forced.msg), "STOP blog 4 ondemand-blog.service force\n");
    EXPECT_EQ(format_line(plain.msg), "STOP blog 4 ondemand-blog.service\n");
    EXPECT_FALSE(proto::parse("STOP blog 4 ondemand-blog.service now").ok);
    EXPECT_FALSE(proto::parse("FREEZE blog 4 ondemand-blog.service force").ok);
}

} // namespace
