// helperd's TOML config file and how flags override it.
#include "config.h"
#include "options.h"
#include "policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace ondemand::helperd;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::UnorderedElementsAre;

TEST(HelperdConfig, EveryKey) {
    config_result r = parse_config(R"(
socket = "/run/ondemand/helperd.sock"
bus = "user"
allow_units = ["ondemand-*.service", "web-?.service"]
allow_uids = [33, "root"]
allow_gids = [0]
socket_mode = "0600"
log_level = "debug"
)",
                                   "test.toml");
    ASSERT_TRUE(r.ok()) << r.errors[0];
    const config_values& v = r.values;
    EXPECT_EQ(v.socket, "/run/ondemand/helperd.sock");
    ASSERT_TRUE(v.bus);
    EXPECT_EQ(v.bus->type, bus_address::kind::user);
    EXPECT_THAT(*v.allow_units, ElementsAre("ondemand-*.service", "web-?.service"));
    EXPECT_THAT(*v.allow_uids, ElementsAre(33u, 0u));
    EXPECT_THAT(*v.allow_gids, ElementsAre(0u));
    EXPECT_EQ(v.socket_mode, 0600u);
    EXPECT_EQ(v.level, log_level::debug);
}

TEST(HelperdConfig, BusAddressAndPeerToPeer) {
    config_result r =
        parse_config("bus = \"unix:path=/run/systemd/private\"\npeer_to_peer = true\n", "t");
    ASSERT_TRUE(r.ok()) << r.errors[0];
    EXPECT_EQ(r.values.bus->type, bus_address::kind::address);
    EXPECT_EQ(r.values.bus->address, "unix:path=/run/systemd/private");
    EXPECT_TRUE(r.values.bus->peer_to_peer);
}

TEST(HelperdConfig, EmptyFileSetsNothing) {
    config_result r = parse_config("", "t");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r.values.socket);
    EXPECT_FALSE(r.values.bus);
    EXPECT_FALSE(r.values.allow_units);
}

TEST(HelperdConfig, EveryBadKeyIsNamed) {
    config_result r = parse_config(R"(bus = "usr"
allow_units = ["ondemand-*.service", 3]
allow_uids = [-1]
allow_gids = "www-data"
socket_mode = "0999"
log_level = "loud"
colour = true
socket = "relative.sock"
peer_to_peer = "yes"
)",
                                   "t");
    EXPECT_FALSE(r.ok());
    ASSERT_EQ(r.errors.size(), 9u);
    std::string all;
    for (const std::string& e : r.errors) {
        all += e + "\n";
    }
    for (const char* key : {"t:1: bus: ", "t:2: allow_units: ", "t:3: allow_uids: ",
                            "t:4: allow_gids: ", "t:5: socket_mode: ", "t:6: log_level: ",
                            "t:7: colour: unknown key", "t:8: socket: ", "t:9: peer_to_peer: "}) {
        EXPECT_THAT(all, HasSubstr(key));
    }
}

TEST(HelperdConfig, PeerToPeerNeedsAnAddress) {
    config_result r = parse_config("bus = \"user\"\npeer_to_peer = true\n", "t");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0], "t: peer_to_peer: needs bus set to a D-Bus address");
}

TEST(HelperdConfig, SyntaxErrorNamesTheLine) {
    config_result r = parse_config("socket = \"/x\"\nallow_units = [\n", "t");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_THAT(r.errors[0], testing::MatchesRegex("^t:[0-9]+: .+"))
        << "FILE:LINE: like ondemandctl";
}

TEST(HelperdConfig, FlagsOverrideTheFile) {
    options cli;
    cli.socket = "/from/flag.sock";
    cli.given.socket = true;
    cli.allow_uids = {33};
    cli.given.allow_uids = true;
    config_values file;
    file.socket = "/from/file.sock";
    file.allow_uids = std::vector<uid_t>{1, 2};
    file.allow_units = std::vector<std::string>{"web-*.service"};
    file.level = log_level::warning;
    file.bus = bus_address{bus_address::kind::user, {}, false};
    options o = merge_config(cli, file);
    EXPECT_EQ(o.socket, "/from/flag.sock");
    EXPECT_THAT(o.allow_uids, ElementsAre(33u));
    EXPECT_THAT(o.allow_units, ElementsAre("web-*.service"));
    EXPECT_EQ(o.level, log_level::warning);
    EXPECT_EQ(o.bus.type, bus_address::kind::user);
}

TEST(HelperdConfig, ParseHelpers) {
    EXPECT_EQ(parse_mode("0660"), 0660u);
    EXPECT_EQ(parse_mode("600"), 0600u);
    EXPECT_THROW(parse_mode("0999"), std::invalid_argument);
    EXPECT_THROW(parse_mode("01777"), std::invalid_argument);
    EXPECT_EQ(parse_uid("0"), 0u);
    EXPECT_EQ(parse_uid("root"), 0u);
    EXPECT_THROW(parse_uid("no-such-user-here"), std::invalid_argument);
    EXPECT_EQ(parse_gid("root"), 0u);
}

TEST(HelperdConfig, Limits) {
    config_result r = parse_config(R"(
max_connections = 100
max_connections_per_uid = 10
max_apps = 500
line_timeout_ms = 2000
max_waits_per_client = 64
)",
                                   "test.toml");
    ASSERT_TRUE(r.ok()) << r.errors[0];
    EXPECT_EQ(r.values.max_connections, 100u);
    EXPECT_EQ(r.values.max_connections_per_uid, 10u);
    EXPECT_EQ(r.values.max_apps, 500u);
    EXPECT_EQ(r.values.line_timeout_ms, 2000u);
    EXPECT_EQ(r.values.max_waits_per_client, 64u);

    config_result bad = parse_config("max_apps = 0\nmax_connections = \"many\"\n", "bad.toml");
    ASSERT_EQ(bad.errors.size(), 2u);
    EXPECT_THAT(bad.errors[0], HasSubstr("max_apps"));
    EXPECT_THAT(bad.errors[1], HasSubstr("max_connections"));

    options defaults;
    EXPECT_EQ(defaults.max_connections, resource_limits::default_max_connections);
    EXPECT_EQ(defaults.max_connections_per_uid, resource_limits::default_max_connections_per_uid);
    EXPECT_EQ(defaults.max_apps, resource_limits::default_max_apps);
    EXPECT_EQ(std::chrono::milliseconds(defaults.line_timeout_ms),
              resource_limits::default_line_timeout);
    EXPECT_EQ(defaults.max_waits_per_client, resource_limits::default_max_waits_per_client);
    options cli;
    cli.max_apps = 7;
    cli.given.max_apps = true;
    options o = merge_config(cli, r.values);
    EXPECT_EQ(o.max_apps, 7u) << "the flag wins";
    EXPECT_EQ(o.max_connections, 100u);
    EXPECT_EQ(o.line_timeout_ms, 2000u);
}

TEST(HelperdConfig, TheAppRegistryAndTheStopDeadline) {
    config_result r = parse_config(R"(
apps_dir = "/etc/ondemand/apps"
app_socket_dir = "/run/ondemand/apps"
stop_timeout_ms = 5000
)",
                                   "test.toml");
    ASSERT_TRUE(r.ok()) << r.errors[0];
    EXPECT_EQ(r.values.apps_dir, "/etc/ondemand/apps");
    EXPECT_EQ(r.values.app_socket_dir, "/run/ondemand/apps");
    EXPECT_EQ(r.values.stop_timeout_ms, 5000u);

    config_result bad =
        parse_config("apps_dir = \"apps\"\napp_socket_dir = 3\nstop_timeout_ms = 0\n", "bad.toml");
    EXPECT_THAT(bad.errors,
                UnorderedElementsAre(HasSubstr("bad.toml:1: apps_dir: must be an absolute path"),
                                     HasSubstr("bad.toml:2: app_socket_dir: must be a string"),
                                     HasSubstr("bad.toml:3: stop_timeout_ms: ")));

    options defaults;
    EXPECT_TRUE(defaults.apps_dir.empty()) << "no registry unless asked: helperd trusts clients";
    EXPECT_EQ(std::chrono::milliseconds(defaults.stop_timeout_ms),
              resource_limits::default_stop_timeout);
    options cli;
    cli.apps_dir = "/srv/apps";
    cli.given.apps_dir = true;
    options o = merge_config(cli, r.values);
    EXPECT_EQ(o.apps_dir, "/srv/apps") << "the flag wins";
    EXPECT_EQ(o.app_socket_dir, "/run/ondemand/apps");
    EXPECT_EQ(o.stop_timeout_ms, 5000u);
}
