// helperd's unit allowlist (fnmatch globs) and peer credential policy.
#include "policy.h"

#include <gtest/gtest.h>

using ondemand::helperd::peer_credentials;
using ondemand::helperd::peer_policy;
using ondemand::helperd::unit_allowlist;

TEST(UnitAllowlist, DefaultAllowsOnlyOndemandServices) {
    unit_allowlist allow;
    ASSERT_EQ(allow.globs().size(), 1u);
    EXPECT_EQ(allow.globs()[0], "ondemand-*.service");
    EXPECT_TRUE(allow.allows("ondemand-blog.service"));
    EXPECT_TRUE(allow.allows("ondemand-podman@blog.service"));
    EXPECT_FALSE(allow.allows("ondemand-blog.socket"));
    EXPECT_FALSE(allow.allows("sshd.service"));
    EXPECT_FALSE(allow.allows("x-ondemand-blog.service"));
    EXPECT_FALSE(allow.allows("ondemand.service"));
}

TEST(UnitAllowlist, SeveralGlobs) {
    unit_allowlist allow({"ondemand-podman@*.service", "web-?.service", "app-[ab].service"});
    EXPECT_TRUE(allow.allows("ondemand-podman@blog.service"));
    EXPECT_FALSE(allow.allows("ondemand-docker@blog.service"));
    EXPECT_TRUE(allow.allows("web-1.service"));
    EXPECT_FALSE(allow.allows("web-12.service"));
    EXPECT_TRUE(allow.allows("app-b.service"));
    EXPECT_FALSE(allow.allows("app-c.service"));
}

TEST(UnitAllowlist, EscapedNamesAreMatchedLiterally) {
    unit_allowlist allow({"ondemand-exec@*.service"});
    EXPECT_TRUE(allow.allows("ondemand-exec@my\\x2dapp.service"));
    unit_allowlist exact({"ondemand-exec@my\\\\x2dapp.service"});
    EXPECT_TRUE(exact.allows("ondemand-exec@my\\x2dapp.service"));
    EXPECT_FALSE(exact.allows("ondemand-exec@myx2dapp.service"));
}

TEST(PeerPolicy, OpenWithoutRules) {
    peer_policy open;
    EXPECT_TRUE(open.open());
    EXPECT_TRUE(open.allows(peer_credentials{1, 0, 0, {}}));
    EXPECT_TRUE(open.allows(peer_credentials{1, 12345, 12345, {}}));
}

TEST(PeerPolicy, ListedUidOrGid) {
    peer_policy policy({33}, {115});
    EXPECT_FALSE(policy.open());
    EXPECT_TRUE(policy.allows(peer_credentials{1, 33, 33, {}}));
    EXPECT_TRUE(policy.allows(peer_credentials{1, 1000, 115, {}}));
    EXPECT_TRUE(policy.allows(peer_credentials{1, 1000, 1000, {27, 115}})) << "supplementary";
    EXPECT_FALSE(policy.allows(peer_credentials{1, 1000, 1000, {27}}));
}

TEST(PeerPolicy, RootIsNotSpecial) {
    peer_policy policy({33}, {});
    EXPECT_FALSE(policy.allows(peer_credentials{1, 0, 0, {0}}));
    peer_policy with_root({0, 33}, {});
    EXPECT_TRUE(with_root.allows(peer_credentials{1, 0, 0, {}}));
}

TEST(UnitAllowlist, ExcludedUnitsAreRefused) {
    unit_allowlist allow;
    allow.exclude("ondemand-helperd.service");
    EXPECT_FALSE(allow.allows("ondemand-helperd.service"));
    EXPECT_TRUE(allow.allows("ondemand-blog.service"));
}
