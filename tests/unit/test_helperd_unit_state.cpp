// helperd's description of a unit's state for FAILED reasons.
#include "systemd.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>
#include <string>

using ondemand::helperd::describe_unit_state;
using ondemand::helperd::unit_state;

TEST(DescribeUnitState, ResultAndMainProcess) {
    unit_state s;
    s.result = "exit-code";
    s.exec_main_code = CLD_EXITED;
    s.exec_main_status = 3;
    EXPECT_EQ(describe_unit_state(s), "result exit-code, main process exited with status 3");
    s.result = "signal";
    s.exec_main_code = CLD_KILLED;
    s.exec_main_status = SIGKILL;
    EXPECT_EQ(describe_unit_state(s), "result signal, main process killed by SIGKILL");
    EXPECT_EQ(describe_unit_state(unit_state{}), "result unknown");
}

TEST(DescribeUnitState, StatusTextIsAppendedAsOneLine) {
    unit_state s;
    s.result = "exit-code";
    s.exec_main_code = CLD_EXITED;
    s.exec_main_status = 125;
    s.status_text = "image localhost/x:1 not found\n(pull it first)\n";
    EXPECT_EQ(describe_unit_state(s), "result exit-code, main process exited with status 125, "
                                      "status: image localhost/x:1 not found (pull it first)");
}

TEST(DescribeUnitState, LongStatusTextIsCut) {
    unit_state s;
    s.result = "exit-code";
    s.status_text = std::string(5000, 'x');
    std::string d = describe_unit_state(s);
    EXPECT_EQ(d, "result exit-code, status: " + std::string(512, 'x'));
}
