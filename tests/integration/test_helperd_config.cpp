// helperd's operations side: config file + SIGHUP reload, --check-config, sd_notify
// (READY=1, STATUS=, WATCHDOG=1, STOPPING=1).
#include "helperd_fixture.h"

#include <gmock/gmock.h>

#include <csignal>
#include <fstream>

namespace ondemand::testing {

using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

} // namespace

TEST_F(HelperdTest, SighupReloadsTheAllowlist) {
    std::string unit = testapp_unit("reload", "");
    std::string config = dir_ + "/helperd.toml";
    write_file(config, "allow_units = [\"ondemand-none-*.service\"]\nlog_level = \"debug\"\n");
    start_helperd({"--config", config}, false);
    auto c = connect();
    c->send(start_line("reload", 1, unit));
    EXPECT_EQ(c->read_line(), "FAILED reload 1 not-allowed " + unit);

    write_file(config, "allow_units = [\"ondemand-it-*.service\"]\n");
    ASSERT_EQ(::kill(helperd_pid_, SIGHUP), 0);
    ASSERT_TRUE(wait_notification("RELOADING=1"));
    ASSERT_TRUE(wait_notification("READY=1")) << "reload finished";
    c->send(start_line("reload", 2, unit));
    EXPECT_EQ(c->read_line(), "READY reload 2") << "the same connection, new rules";
    EXPECT_EQ(count_log("reloaded: 1 unit glob(s)"), 1);

    write_file(config, "allow_units = 7\n");
    ASSERT_EQ(::kill(helperd_pid_, SIGHUP), 0);
    ASSERT_TRUE(wait_notification("READY=1"));
    EXPECT_EQ(count_log("reload failed"), 1);
    EXPECT_THAT(helperd_log(), HasSubstr("helperd.toml:1: allow_units: must be an array"));
    c->send("STATUS");
    EXPECT_THAT(c->read_line().value_or(""), StartsWith("APP reload ready " + unit + " since="))
        << "still serving, old rules kept";
}

TEST_F(HelperdTest, FlagsOverrideTheConfigFile) {
    std::string unit = testapp_unit("flagwins", "");
    std::string config = dir_ + "/helperd.toml";
    write_file(config, "allow_units = [\"ondemand-none-*.service\"]\n");
    start_helperd({"--config", config}); // the fixture's --allow-unit ondemand-it-* wins
    auto c = connect();
    c->send(start_line("flagwins", 1, unit));
    EXPECT_EQ(c->read_line(), "READY flagwins 1");
}

TEST_F(HelperdTest, NotifiesStatusAndWatchdog) {
    start_helperd({}, true, {"WATCHDOG_USEC=200000"});
    EXPECT_TRUE(wait_notification("STATUS=")) << "STATUS= for systemctl status";
    EXPECT_TRUE(wait_notification("WATCHDOG=1"));
    EXPECT_TRUE(wait_notification("WATCHDOG=1")) << "and again";
    ::kill(helperd_pid_, SIGTERM);
    EXPECT_TRUE(wait_notification("STOPPING=1"));
    EXPECT_EQ(wait_helperd_exit(), 0);
}

TEST_F(HelperdTest, RefusesToStopItsOwnUnit) {
    // helperd as a unit of the manager, matched by the default allowlist ondemand-*.service.
    std::string unit = "ondemand-it-" + std::to_string(::getpid()) + "-self.service";
    units_.push_back(unit); // stopped by TearDown
    ASSERT_EQ(run_program({"systemd-run", "--user", "--quiet", "--unit", unit, "-p", "Type=notify",
                           bin_dir_ + "/ondemand-helperd", "--user", "--socket", helperd_socket_}),
              0)
        << "systemd-run returns once helperd sent READY=1";
    auto c = connect();
    c->send("STOP self 1 " + unit);
    EXPECT_EQ(c->read_line(), "FAILED self 1 not-allowed " + unit);
    EXPECT_EQ(active_state(unit), "active");
}

TEST(HelperdCheckConfig, NamesEveryBadKey) {
    std::string bin = std::filesystem::read_symlink("/proc/self/exe").parent_path().string() +
                      "/ondemand-helperd";
    std::string tmpl = "/tmp/odh-cfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    std::string bad = tmpl + "/bad.toml";
    std::string good = tmpl + "/good.toml";
    write_file(bad, "bus = \"usr\"\nsocket_mode = \"0999\"\ncolour = 1\n");
    write_file(good, "bus = \"user\"\nallow_units = [\"ondemand-*.service\"]\n");
    std::string out;
    EXPECT_EQ(run_program({bin, "--config", bad, "--check-config"}, &out, true), 1);
    EXPECT_THAT(out, HasSubstr(bad + ":1: bus: "));
    EXPECT_THAT(out, HasSubstr(bad + ":2: socket_mode: "));
    EXPECT_THAT(out, HasSubstr(bad + ":3: colour: unknown key"));
    out.clear();
    EXPECT_EQ(run_program({bin, "--config", good, "--check-config"}, &out, true), 0);
    EXPECT_THAT(out, HasSubstr("OK"));
    std::filesystem::remove_all(tmpl);
}

} // namespace ondemand::testing
