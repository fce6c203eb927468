// Whose unit is whose (issue #12), against the real (sandboxed) systemd user manager: one unit
// belongs to one app at a time, so a second app name can neither wedge a stop nor bypass an
// app's use lease; a stop that never ends fails at the stop deadline; and with an app registry
// (--apps-dir) helperd serves only the apps of its app files, with their units, sockets and
// start timeouts, re-read on SIGHUP.
#include "helperd_fixture.h"

#include <gmock/gmock.h>

#include <csignal>
#include <string>

namespace ondemand::testing {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

namespace {

// Every APP line of a STATUS answer, up to END.
std::string status_of(line_client& c) {
    c.send("STATUS");
    std::string out;
    while (auto line = c.read_line(5s)) {
        if (*line == "END") {
            return out;
        }
        out += *line + "\n";
    }
    ADD_FAILURE() << "STATUS without END";
    return out;
}

} // namespace

// ---- one unit, one app (with or without a registry) -------------------------------------------

TEST_F(HelperdTest, TwoAppNamesOnOneUnitCannotWedgeAStop) {
    std::string unit = testapp_unit("blog", "");
    start_helperd();
    auto a = connect();
    auto b = connect();
    a->send(start_line("blog", 1, unit));
    ASSERT_EQ(a->read_line(), "READY blog 1");
    b->send("START www 1 " + unit + " connect 20000 " + socket_path("blog"));
    EXPECT_EQ(b->read_line(), "FAILED www 1 not-allowed unit " + unit + " belongs to app blog");
    // Both STOPs at once: before, systemd merged the two stop jobs, helperd answered one app and
    // left the other stopping for ever.
    a->send("STOP blog 2 " + unit);
    b->send("STOP www 2 " + unit);
    EXPECT_EQ(a->read_line(10s), "STOPPED blog 2");
    auto other = b->read_line(10s);
    ASSERT_TRUE(other) << "the second STOP is answered";
    EXPECT_THAT(*other, AnyOf("STOPPED www 2",
                              "FAILED www 2 not-allowed unit " + unit + " belongs to app blog"));
    EXPECT_THAT(status_of(*a), Not(HasSubstr(" stopping ")));
    EXPECT_EQ(active_state(unit), "inactive");
}

TEST_F(HelperdTest, AStopUnderAnotherAppNameIsRefusedWhileTheAppRuns) {
    std::string unit = testapp_unit("blog", "");
    start_helperd();
    auto nginx = connect();
    nginx->send("HELLO nginx-a");
    nginx->send(start_line("blog", 1, unit));
    ASSERT_EQ(nginx->read_line(), "READY blog 1");
    nginx->send("USE blog 1 600000");
    auto evil = connect();
    evil->send("STOP blog 0 " + unit);
    EXPECT_THAT(evil->read_line().value_or(""), StartsWith("FAILED blog 0 in-use "))
        << "the lease holds for its own name";
    evil->send("STOP evil 0 " + unit);
    EXPECT_EQ(evil->read_line(), "FAILED evil 0 not-allowed unit " + unit + " belongs to app blog");
    evil->send("STOP evil 1 " + unit + " force");
    EXPECT_EQ(evil->read_line(), "FAILED evil 1 not-allowed unit " + unit + " belongs to app blog");
    EXPECT_EQ(active_state(unit), "active");
    EXPECT_EQ(count_log("StopUnit"), 0) << "no D-Bus call for a refused line";
}

TEST_F(HelperdTest, AFreezeUnderAnotherAppNameIsRefusedWhileTheAppRuns) {
    std::string unit = testapp_unit("blog", "");
    start_helperd();
    auto nginx = connect();
    nginx->send(start_line("blog", 1, unit));
    ASSERT_EQ(nginx->read_line(), "READY blog 1");
    auto evil = connect();
    evil->send("FREEZE evil 0 " + unit);
    EXPECT_EQ(evil->read_line(), "FAILED evil 0 not-allowed unit " + unit + " belongs to app blog");
    EXPECT_EQ(count_log("FreezeUnit"), 0);
    std::string freezer;
    run_program({"systemctl", "--user", "show", "--property=FreezerState", "--value", unit},
                &freezer);
    EXPECT_EQ(freezer, "running\n");
    nginx->send(start_line("blog", 2, unit));
    EXPECT_EQ(nginx->read_line(5s), "READY blog 2") << "the app still answers";
}

TEST_F(HelperdTest, AStopThatNeverEndsFailsAtTheStopDeadline) {
    // Its ExecStop= hangs: the stop job runs until TimeoutStopSec= (3 s).
    std::string unit =
        testapp_unit("stubborn", "", {"ExecStop=/bin/sleep 1000", "TimeoutStopSec=3s"});
    start_helperd({"--stop-timeout-ms", "500"});
    auto c = connect();
    c->send(start_line("stubborn", 1, unit));
    ASSERT_EQ(c->read_line(), "READY stubborn 1");
    c->send("STOP stubborn 2 " + unit);
    auto line = c->read_line(5s);
    ASSERT_TRUE(line) << "answered at the stop deadline, not when systemd gives up";
    EXPECT_EQ(*line, "FAILED stubborn 2 stop-failed timeout: the stop job did not finish within "
                     "500 ms; unit " +
                         unit + " is deactivating");
    EXPECT_THAT(status_of(*c), HasSubstr("APP stubborn stopped " + unit));
}

// ---- the app registry -------------------------------------------------------------------------

TEST_F(HelperdTest, UnderARegistryAStartWithAnotherSocketIsRefused) {
    std::string app = registry_app("blog", "");
    std::vector<std::string> flags = registry_flags();
    start_helperd(flags);
    EXPECT_EQ(count_log("no apps_dir"), 0);
    EXPECT_EQ(count_log("app registry: 1 app(s) from " + apps_dir()), 1);
    auto c = connect();
    std::string unit = "ondemand-exec@" + app + ".service";
    c->send("START " + app + " 1 " + unit + " connect 20000 " + dir_ + "/elsewhere.sock");
    EXPECT_EQ(c->read_line(), "FAILED " + app + " 1 not-allowed START disagrees with " +
                                  apps_dir() + "/" + app + ".conf: socket " + app_socket_dir() +
                                  "/" + app + "/app.sock (START has " + dir_ + "/elsewhere.sock)");
    c->send("START " + app + " 2 " + unit + " http:/ 20000 " + app_socket_dir() + "/" + app +
            "/app.sock");
    EXPECT_THAT(c->read_line().value_or(""),
                StartsWith("FAILED " + app + " 2 not-allowed START disagrees with "));
    c->send("STOP " + app + " 3 ondemand-exec@other.service");
    EXPECT_THAT(c->read_line().value_or(""),
                StartsWith("FAILED " + app + " 3 not-allowed STOP disagrees with "));
    EXPECT_EQ(count_log("StartUnit"), 0);
    EXPECT_EQ(count_log("StopUnit"), 0);
    c->send(registry_start(app, 4));
    EXPECT_EQ(c->read_line(), "READY " + app + " 4") << "as the app file has it";
}

TEST_F(HelperdTest, UnderARegistryAnUnknownAppIsRefusedAndGetsNoRecord) {
    std::string app = registry_app("known", "");
    std::string ghost_unit = testapp_unit("ghost", ""); // allowed, and not in the registry
    start_helperd(registry_flags());
    auto c = connect();
    c->send(start_line("ghost", 1, ghost_unit));
    EXPECT_EQ(c->read_line(), "FAILED ghost 1 not-allowed unknown app ghost");
    c->send("WAIT ghost 2");
    EXPECT_EQ(c->read_line(), "FAILED ghost 2 not-allowed unknown app ghost");
    c->send("STOP ghost 3 " + ghost_unit);
    EXPECT_EQ(c->read_line(), "FAILED ghost 3 not-allowed unknown app ghost");
    c->send("FREEZE ghost 4 " + ghost_unit);
    EXPECT_EQ(c->read_line(), "FAILED ghost 4 not-allowed unknown app ghost");
    c->send("USE ghost 5 1000");
    EXPECT_EQ(c->read_line(), "ERROR unknown app ghost");
    c->send(registry_start(app, 1));
    EXPECT_EQ(c->read_line(), "READY " + app + " 1");
    std::string status = status_of(*c);
    EXPECT_THAT(status, HasSubstr("APP " + app + " ready "));
    EXPECT_THAT(status, Not(HasSubstr("ghost")));
    EXPECT_EQ(active_state(ghost_unit), "inactive");
    EXPECT_EQ(count_log("StartUnit"), 1);
}

TEST_F(HelperdTest, UnderARegistryTheAppFilesStartTimeoutWinsOverTheClients) {
    // Ready after ~300 ms: a client's timeout_ms=1 would fail it (and everyone joining it).
    std::string app = registry_app("slow", "--delay-ms 300", "START_TIMEOUT=20s\n");
    start_helperd(registry_flags());
    auto a = connect();
    auto b = connect();
    a->send(registry_start(app, 1, 1));
    b->send(registry_start(app, 1, 20000));
    EXPECT_EQ(a->read_line(), "READY " + app + " 1");
    EXPECT_EQ(b->read_line(), "READY " + app + " 1");
}

TEST_F(HelperdTest, UnderARegistryTheStartTimeoutIsTheAppFiles) {
    std::string app = registry_app("never", "--never-listen", "START_TIMEOUT=400ms\n");
    start_helperd(registry_flags());
    auto c = connect();
    c->send(registry_start(app, 1, 600000));
    auto line = c->read_line(5s);
    ASSERT_TRUE(line) << "400 ms, not the client's 600 s";
    EXPECT_THAT(*line, StartsWith("FAILED " + app + " 1 timeout"));
}

TEST_F(HelperdTest, SighupPicksUpANewAppFile) {
    std::string app = registry_app("late", "", "", false);
    start_helperd(registry_flags());
    auto c = connect();
    c->send(registry_start(app, 1));
    EXPECT_EQ(c->read_line(), "FAILED " + app + " 1 not-allowed unknown app " + app);
    write_app_file(app, "KIND=exec\nEXEC=/bin/true\n");
    ASSERT_EQ(::kill(helperd_pid_, SIGHUP), 0);
    ASSERT_TRUE(wait_notification("RELOADING=1"));
    ASSERT_TRUE(wait_notification("READY=1")) << "reload finished";
    c->send(registry_start(app, 2));
    EXPECT_EQ(c->read_line(), "READY " + app + " 2") << "the same connection, the new app file";
}

TEST_F(HelperdTest, WithoutARegistryHelperdSaysItTrustsItsClients) {
    start_helperd();
    EXPECT_EQ(count_log("warning: no apps_dir: helperd trusts its clients"), 1);
}

} // namespace ondemand::testing
