// helperd against the real (sandboxed) systemd user manager: starts, readiness modes, failures,
// coalescing, stops, DOWN, refusals. helperd runs as a subprocess; the tests talk to its socket.
#include "helperd_fixture.h"
#include "ondemand_protocol.h"

#include <gmock/gmock.h>

#include <memory>
#include <thread>
#include <vector>

namespace ondemand::testing {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST_F(HelperdTest, ConnectReadiness) {
    std::string unit = testapp_unit("conn", "--delay-ms 150");
    start_helperd();
    auto c = connect();
    c->send(start_line("conn", 1, unit));
    EXPECT_EQ(c->read_line(), "READY conn 1");
    EXPECT_EQ(count_log("StartUnit " + unit), 1);
    EXPECT_EQ(active_state(unit), "active");
    line_client app(socket_path("conn"));
    EXPECT_TRUE(app.connected()) << "READY must mean the socket accepts connections";
}

TEST_F(HelperdTest, ConnectReadinessWhenTheSocketDirectoryAppearsLater) {
    std::string sock_dir = dir_ + "/later/app";
    std::string unit =
        write_unit("later", {"ExecStartPre=/bin/mkdir -p " + sock_dir,
                             "ExecStart=" + bin_dir_ + "/ondemand-testapp --socket " + sock_dir +
                                 "/s.sock --name later --delay-ms 100"});
    start_helperd();
    auto c = connect();
    c->send("START later 1 " + unit + " connect 20000 " + sock_dir + "/s.sock");
    EXPECT_EQ(c->read_line(), "READY later 1");
}

TEST_F(HelperdTest, NotifyReadiness) {
    std::string unit =
        testapp_unit("notif", "--delay-ms 100 --notify", {"Type=notify", "NotifyAccess=all"});
    start_helperd();
    auto c = connect();
    c->send(start_line("notif", 3, unit, "notify"));
    EXPECT_EQ(c->read_line(), "READY notif 3");
    EXPECT_EQ(active_state(unit), "active");
}

TEST_F(HelperdTest, HttpReadiness) {
    std::string unit = testapp_unit("web", "--delay-ms 50");
    start_helperd();
    auto c = connect();
    c->send(start_line("web", 1, unit, "http:/health"));
    EXPECT_EQ(c->read_line(), "READY web 1");
}

TEST_F(HelperdTest, HttpReadinessNeverOkTimesOutNamingTheStatus) {
    std::string unit = testapp_unit("web503", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("web503", 1, unit, "http:/status/503", 600));
    auto line = c->read_line();
    ASSERT_TRUE(line);
    EXPECT_THAT(*line, StartsWith("FAILED web503 1 timeout"));
    EXPECT_THAT(*line, HasSubstr("HTTP 503"));
}

TEST_F(HelperdTest, ExitBeforeListenFailsPromptlyWithTheExitStatus) {
    std::string unit = testapp_unit("early", "--delay-ms 50 --exit-before-listen=3");
    start_helperd();
    auto c = connect();
    // A deadline far beyond the read limit: the answer must come from the unit's death.
    c->send(start_line("early", 1, unit, "connect", 600000));
    auto line = c->read_line(20s);
    ASSERT_TRUE(line) << "no answer: the failure was not detected";
    EXPECT_THAT(*line, StartsWith("FAILED early 1 "));
    EXPECT_THAT(*line, HasSubstr("exited with status 3"));
    EXPECT_THAT(*line, Not(HasSubstr("timeout")));
    c->send("STATUS");
    EXPECT_THAT(c->read_line().value_or(""), HasSubstr(" starts=1 failures=1"));
    EXPECT_EQ(c->read_line(), "END");
}

TEST_F(HelperdTest, FailedStartJobNamesTheCause) {
    // Type=exec: the start job itself fails when the binary cannot be executed.
    std::string unit = write_unit("noexec", {"Type=exec", "ExecStart=" + dir_ + "/missing-binary"});
    start_helperd();
    auto c = connect();
    c->send(start_line("noexec", 1, unit, "connect", 600000));
    auto line = c->read_line(20s);
    ASSERT_TRUE(line);
    EXPECT_THAT(*line, StartsWith("FAILED noexec 1 unit-failed start job failed: "));
    EXPECT_THAT(*line, HasSubstr("exited with status 203"));
}

TEST_F(HelperdTest, FailureReasonCarriesTheUnitsStatusText) {
    // As the podman/docker templates do when the image is missing: STATUS= then exit. The
    // status text has a tab and a trailing newline: the reason stays one line.
    std::string unit = write_unit(
        "statustext",
        {"Type=notify", "NotifyAccess=all",
         "ExecStart=/bin/sh -c 'systemd-notify --status=\"image x:1 not found\tsee docs\"; "
         "sleep 0.2; exit 125'"});
    start_helperd();
    auto c = connect();
    c->send(start_line("statustext", 1, unit, "connect", 600000));
    auto line = c->read_line(20s);
    ASSERT_TRUE(line);
    EXPECT_THAT(*line,
                StartsWith("FAILED statustext 1 unit-failed start job failed: result exit-code"));
    EXPECT_THAT(*line, HasSubstr("exited with status 125, status: image x:1 not found see docs"));
}

TEST_F(HelperdTest, NeverListeningTimesOut) {
    std::string unit = testapp_unit("never", "--never-listen");
    start_helperd();
    auto c = connect();
    c->send(start_line("never", 4, unit, "connect", 500));
    auto line = c->read_line();
    ASSERT_TRUE(line);
    EXPECT_THAT(*line, StartsWith("FAILED never 4 timeout"));
    EXPECT_THAT(*line, HasSubstr("no socket at"));
}

TEST_F(HelperdTest, HundredConcurrentStartsMakeOneStartUnit) {
    std::string unit = testapp_unit("many", "--delay-ms 300");
    start_helperd();
    constexpr int clients = 5;
    constexpr int per_client = 20;
    std::vector<std::unique_ptr<line_client>> cs;
    cs.reserve(clients);
    for (int i = 0; i < clients; ++i) {
        cs.push_back(connect());
    }
    for (int n = 0; n < per_client; ++n) {
        for (auto& c : cs) {
            c->send(start_line("many", 9, unit));
        }
    }
    int ready = 0;
    for (auto& c : cs) {
        for (int n = 0; n < per_client; ++n) {
            auto line = c->read_line();
            ASSERT_TRUE(line);
            EXPECT_EQ(*line, "READY many 9");
            ready += *line == "READY many 9";
        }
    }
    EXPECT_EQ(ready, clients * per_client);
    EXPECT_EQ(count_log("StartUnit " + unit), 1);
}

TEST_F(HelperdTest, WaitBeforeStartFromAnotherClient) {
    std::string unit = testapp_unit("waiter", "--delay-ms 100");
    start_helperd();
    auto waiter = connect();
    auto starter = connect();
    waiter->send("WAIT waiter 2");
    starter->send("STATUS");
    EXPECT_EQ(starter->read_line(), "END") << "a WAIT alone makes no app known";
    starter->send(start_line("waiter", 2, unit));
    EXPECT_EQ(starter->read_line(), "READY waiter 2");
    EXPECT_EQ(waiter->read_line(), "READY waiter 2");
    waiter->send("WAIT waiter 2");
    EXPECT_EQ(waiter->read_line(), "READY waiter 2") << "known ready: answered at once";
}

TEST_F(HelperdTest, StartOfAReadyAppAnswersWithoutStartUnit) {
    std::string unit = testapp_unit("again", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("again", 1, unit));
    ASSERT_EQ(c->read_line(), "READY again 1");
    c->send(start_line("again", 2, unit));
    EXPECT_EQ(c->read_line(), "READY again 2");
    EXPECT_EQ(count_log("StartUnit " + unit), 1);
    c->send("STATUS");
    EXPECT_THAT(c->read_line().value_or(""), StartsWith("APP again ready " + unit + " since="));
    EXPECT_EQ(c->read_line(), "END");
}

TEST_F(HelperdTest, StopStopsTheUnit) {
    std::string unit = testapp_unit("stopme", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("stopme", 1, unit));
    ASSERT_EQ(c->read_line(), "READY stopme 1");
    c->send("STOP stopme 1 " + unit);
    EXPECT_EQ(c->read_line(), "STOPPED stopme 1");
    EXPECT_EQ(active_state(unit), "inactive");
    EXPECT_EQ(count_log("StopUnit " + unit), 1);
    c->send("STATUS");
    std::string app_line = c->read_line().value_or("");
    EXPECT_THAT(app_line, StartsWith("APP stopme stopped " + unit + " since="));
    EXPECT_THAT(app_line, HasSubstr(" starts=1 failures=0"));
    auto parsed = proto::parse(app_line);
    ASSERT_TRUE(parsed.ok) << parsed.error;
    std::string_view since;
    std::string_view last;
    ASSERT_TRUE(proto::find_attr(parsed.msg.attrs, "since", since));
    ASSERT_TRUE(proto::find_attr(parsed.msg.attrs, "last", last));
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    EXPECT_NEAR(static_cast<double>(std::stoll(std::string(since))), static_cast<double>(now_ms),
                10000.0);
    EXPECT_LE(std::stoll(std::string(last)), std::stoll(std::string(since)))
        << "the last request (STOP) came before the stop ended";
    EXPECT_EQ(c->read_line(), "END");
}

TEST_F(HelperdTest, StopOfAReadyAppIsPushedAsDownToTheOtherClients) {
    std::string unit = testapp_unit("ctlstop", "");
    start_helperd();
    auto worker1 = connect();
    auto worker2 = connect();
    auto ctl = connect();
    worker1->send(start_line("ctlstop", 1, unit));
    ASSERT_EQ(worker1->read_line(), "READY ctlstop 1");
    ctl->send("STOP ctlstop 0 " + unit);
    EXPECT_EQ(ctl->read_line(), "STOPPED ctlstop 0");
    EXPECT_EQ(worker1->read_line(), "DOWN ctlstop");
    EXPECT_EQ(worker2->read_line(), "DOWN ctlstop");
    // The stopper gets no DOWN: its next line is the answer to STATUS.
    ctl->send("STATUS");
    auto status = ctl->read_line();
    ASSERT_TRUE(status);
    EXPECT_THAT(*status, StartsWith("APP ctlstop stopped " + unit));
    EXPECT_EQ(ctl->read_line(), "END");

    // Stopped already: a second STOP announces nothing.
    ctl->send("STOP ctlstop 0 " + unit);
    EXPECT_EQ(ctl->read_line(), "STOPPED ctlstop 0");
    worker1->send("STATUS");
    status = worker1->read_line();
    ASSERT_TRUE(status);
    EXPECT_THAT(*status, StartsWith("APP ctlstop stopped")) << "no second DOWN";
}

TEST_F(HelperdTest, StopWithAStartQueuedBehindItPushesNoDown) {
    std::string unit = testapp_unit("requeue", "");
    start_helperd();
    auto worker1 = connect();
    auto worker2 = connect();
    worker1->send(start_line("requeue", 1, unit));
    ASSERT_EQ(worker1->read_line(), "READY requeue 1");
    worker1->send("STOP requeue 1 " + unit);
    worker2->send(start_line("requeue", 2, unit));
    EXPECT_EQ(worker1->read_line(), "STOPPED requeue 1");
    EXPECT_EQ(worker2->read_line(), "READY requeue 2") << "no DOWN before it";
}

TEST_F(HelperdTest, StartDuringStopStartsAfterIt) {
    std::string unit = testapp_unit("bounce", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("bounce", 1, unit));
    ASSERT_EQ(c->read_line(), "READY bounce 1");
    c->send("STOP bounce 1 " + unit);
    c->send(start_line("bounce", 2, unit));
    EXPECT_EQ(c->read_line(), "STOPPED bounce 1");
    EXPECT_EQ(c->read_line(), "READY bounce 2");
    EXPECT_EQ(count_log("StartUnit " + unit), 2);
    EXPECT_EQ(active_state(unit), "active");
}

TEST_F(HelperdTest, FreezeThawAndStopWhileFrozen) {
    std::string unit = testapp_unit("ice", "");
    start_helperd();
    auto c = connect();
    c->send(start_line("ice", 1, unit));
    ASSERT_EQ(c->read_line(), "READY ice 1");
    c->send("FREEZE ice 1 " + unit);
    ASSERT_EQ(c->read_line(), "FROZEN ice 1");
    std::string state;
    run_program({"systemctl", "--user", "show", "-p", "FreezerState", "--value", unit}, &state);
    EXPECT_EQ(state, "frozen\n");
    c->send("STATUS");
    EXPECT_THAT(c->read_line().value_or(""), StartsWith("APP ice frozen " + unit + " since="));
    EXPECT_EQ(c->read_line(), "END");

    c->send(start_line("ice", 2, unit));
    EXPECT_EQ(c->read_line(), "READY ice 2");
    EXPECT_EQ(count_log("ThawUnit " + unit), 1);
    EXPECT_EQ(count_log("StartUnit " + unit), 1) << "thawed, not started again";
    state.clear();
    run_program({"systemctl", "--user", "show", "-p", "FreezerState", "--value", unit}, &state);
    EXPECT_EQ(state, "running\n");

    c->send("FREEZE ice 2 " + unit);
    ASSERT_EQ(c->read_line(), "FROZEN ice 2");
    c->send("STOP ice 2 " + unit);
    EXPECT_EQ(c->read_line(), "STOPPED ice 2");
    EXPECT_EQ(active_state(unit), "inactive");
}

TEST_F(HelperdTest, DownWhenAReadyUnitDies) {
    std::string unit = testapp_unit("dies", "");
    start_helperd();
    auto a = connect();
    auto b = connect();
    a->send(start_line("dies", 1, unit));
    ASSERT_EQ(a->read_line(), "READY dies 1");
    ASSERT_EQ(run_program({"systemctl", "--user", "kill", unit}), 0);
    EXPECT_EQ(a->read_line(), "DOWN dies");
    EXPECT_EQ(b->read_line(), "DOWN dies") << "DOWN goes to every client";
}

TEST_F(HelperdTest, UnitNotInAllowlist) {
    std::string unit = testapp_unit("denied", "");
    start_helperd({"--allow-unit", "ondemand-other-*.service"}, false);
    auto c = connect();
    c->send(start_line("denied", 1, unit));
    EXPECT_EQ(c->read_line(), "FAILED denied 1 not-allowed " + unit);
    c->send("STOP denied 1 " + unit);
    EXPECT_EQ(c->read_line(), "FAILED denied 1 not-allowed " + unit);
    EXPECT_EQ(count_log("StartUnit"), 0);
    EXPECT_EQ(count_log("StopUnit"), 0);
    EXPECT_EQ(active_state(unit), "inactive");
}

TEST_F(HelperdTest, DefaultAllowlistIsOndemandServices) {
    std::string unit = testapp_unit("dflt", ""); // ondemand-it-...: matches ondemand-*.service
    start_helperd({}, false);
    auto c = connect();
    c->send("START other 1 dbus.service connect 1000 " + socket_path("other"));
    EXPECT_EQ(c->read_line(), "FAILED other 1 not-allowed dbus.service");
    c->send(start_line("dflt", 1, unit));
    EXPECT_EQ(c->read_line(), "READY dflt 1");
}

TEST_F(HelperdTest, MalformedLinesGetErrorAndTheConnectionStays) {
    start_helperd();
    auto c = connect();
    c->send("HOWDY");
    EXPECT_EQ(c->read_line(), "ERROR unknown verb");
    c->send("WAIT blog  1");
    EXPECT_EQ(c->read_line(), "ERROR verb needs: app gen");
    c->send("READY blog 1");
    EXPECT_EQ(c->read_line(), "ERROR unexpected verb READY");
    c->send("STATUS");
    EXPECT_EQ(c->read_line(), "END");
    EXPECT_GE(count_log("refused line: unknown verb"), 1);
    EXPECT_THAT(helperd_log(), HasSubstr("(pid "));
}

TEST_F(HelperdTest, OverlongLineGetsErrorAndDisconnect) {
    start_helperd();
    auto c = connect();
    c->send_raw(std::string(5000, 'A'));
    EXPECT_EQ(c->read_line(), "ERROR line too long");
    EXPECT_TRUE(c->wait_closed());
    EXPECT_EQ(count_log("refused line: line too long"), 1);
    auto d = connect();
    d->send("STATUS");
    EXPECT_EQ(d->read_line(), "END") << "other clients are unaffected";
}

TEST_F(HelperdTest, PeerNotAllowed) {
    start_helperd({"--allow-uid", "12345"});
    auto c = connect();
    EXPECT_EQ(c->read_line(), "ERROR peer not allowed");
    EXPECT_TRUE(c->wait_closed());
    EXPECT_EQ(count_log("peer not allowed"), 1);
    EXPECT_THAT(helperd_log(), HasSubstr("uid 0"));
}

TEST_F(HelperdTest, PeerAllowedByGid) {
    start_helperd({"--allow-uid", "12345", "--allow-gid", "0"});
    auto c = connect();
    c->send("STATUS");
    EXPECT_EQ(c->read_line(), "END");
}

TEST_F(HelperdTest, ShutdownAnswersPendingStarts) {
    std::string unit = testapp_unit("slow", "--never-listen");
    start_helperd();
    auto c = connect();
    c->send(start_line("slow", 5, unit, "connect", 600000));
    c->send("STATUS"); // the START is being handled once STATUS answers
    ASSERT_THAT(c->read_line().value_or(""), StartsWith("APP slow starting " + unit + " since="));
    ASSERT_EQ(c->read_line(), "END");
    ASSERT_EQ(::kill(helperd_pid_, SIGTERM), 0);
    EXPECT_EQ(c->read_line(), "FAILED slow 5 shutting-down");
    EXPECT_TRUE(c->wait_closed());
    EXPECT_EQ(wait_helperd_exit(), 0);
}

// Every worker of one nginx has its own connection; HELLO names their instance, so that a
// USE lease reported by one worker never makes a sibling worker's STOP count as another
// nginx's (docs/PROTOCOL.md, HELLO and USE).
TEST_F(HelperdTest, UseLeasesBelongToTheNginxInstanceNotTheConnection) {
    std::string unit = testapp_unit("shared", "");
    start_helperd();
    auto worker1 = connect();
    auto worker2 = connect();
    auto other = connect();
    worker1->send("HELLO nginx-a");
    worker2->send("HELLO nginx-a");
    other->send("HELLO nginx-b");
    // A connection's lines are handled in order: once STATUS is answered, its USE counts.
    auto use = [](line_client& c, const std::string& line) {
        c.send(line);
        c.send("STATUS");
        for (auto l = c.read_line(); l && *l != "END"; l = c.read_line()) {
        }
    };
    auto wait_disconnects = [this](int n) {
        for (int i = 0; i < 1000 && count_log(" disconnected") < n; ++i) {
            std::this_thread::sleep_for(10ms);
        }
        return count_log(" disconnected") >= n;
    };

    worker1->send(start_line("shared", 1, unit));
    ASSERT_EQ(worker1->read_line(), "READY shared 1");
    use(*worker1, "USE shared 1 60000");
    other->send("STOP shared 1 " + unit);
    EXPECT_THAT(other->read_line().value_or(""), StartsWith("FAILED shared 1 in-use "))
        << "another nginx uses it";
    worker2->send("STOP shared 1 " + unit);
    EXPECT_EQ(worker2->read_line(), "STOPPED shared 1") << "a sibling worker's lease is its own";
    EXPECT_EQ(worker1->read_line(), "DOWN shared");
    EXPECT_EQ(other->read_line(), "DOWN shared");

    // The instance's lease lasts while any of its workers is connected.
    worker1->send(start_line("shared", 2, unit));
    ASSERT_EQ(worker1->read_line(), "READY shared 2");
    use(*worker1, "USE shared 2 60000");
    worker1.reset();
    ASSERT_TRUE(wait_disconnects(1));
    other->send("STOP shared 2 " + unit);
    EXPECT_THAT(other->read_line().value_or(""), StartsWith("FAILED shared 2 in-use "));
    worker2.reset();
    ASSERT_TRUE(wait_disconnects(2));
    other->send("STOP shared 2 " + unit);
    EXPECT_EQ(other->read_line(), "STOPPED shared 2");

    other->send("HELLO nginx-c");
    EXPECT_EQ(other->read_line(), "ERROR HELLO sent twice");
}

} // namespace ondemand::testing
