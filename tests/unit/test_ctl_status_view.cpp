// `ondemandctl status`'s views: STATUS fields read back, the table fitting the terminal width,
// one app in detail, JSON.
#include "status_view.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace ondemand::ctl;

constexpr std::uint64_t now = 1'795'332'900'000;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        out.push_back(l);
    }
    return out;
}

app_view running(std::string name, std::string unit) {
    app_view v;
    v.app = std::move(name);
    v.state = "ready";
    v.unit = std::move(unit);
    v.from_helperd = true;
    apply_status_attrs(v, "since=1795332840000 last=1795332895000 starts=2 failures=1 "
                          "last_failure=timeout last_failure_detail=no%20socket%20at%20/x "
                          "events=start@1795332800000,failed:timeout@1795332830000,"
                          "start@1795332835000,ready@1795332840000");
    v.memory = 25 * 1024 * 1024 + 300 * 1024;
    v.cpu_ns = 1'234'000'000;
    v.unit_state = "active";
    return v;
}

std::vector<app_view> sample() {
    return {running("blog", "ondemand-podman@blog.service"),
            running("wiki", "ondemand-podman-systemd@a-very-long-application-name-that-goes-on-"
                            "and-on.service")};
}

TEST(StatusView, StatusFieldsAreReadBack) {
    app_view v = running("blog", "u.service");
    EXPECT_EQ(v.since_ms, 1795332840000u);
    EXPECT_EQ(v.last_ms, 1795332895000u);
    EXPECT_EQ(v.starts, 2u);
    EXPECT_EQ(v.failures, 1u);
    EXPECT_EQ(v.last_failure, "timeout");
    EXPECT_EQ(v.last_failure_detail, "no socket at /x");
    ASSERT_EQ(v.events.size(), 4u);
    EXPECT_EQ(v.events[1].event, "failed");
    EXPECT_EQ(v.events[1].code, "timeout");
    EXPECT_EQ(v.events[1].unix_ms, 1795332830000u);
}

TEST(StatusView, PercentDecodingKeepsMalformedEscapes) {
    EXPECT_EQ(percent_decode("a%20b%25c"), "a b%c");
    EXPECT_EQ(percent_decode("100%"), "100%");
    EXPECT_EQ(percent_decode("%zz%2"), "%zz%2");
}

TEST(StatusView, MalformedEventsAreSkippedAndUnknownKeysIgnored) {
    app_view v;
    apply_status_attrs(v, "future=x events=start@12,bad,@3,ready@x,down@7 starts=oops");
    ASSERT_EQ(v.events.size(), 2u);
    EXPECT_EQ(v.events[0].event, "start");
    EXPECT_EQ(v.events[1].event, "down");
    EXPECT_FALSE(v.starts);
}

TEST(StatusView, UnlimitedWidthShowsEveryColumnAndTheWholeUnit) {
    auto lines = lines_of(render_table(sample(), 0, now));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0].rfind("APP", 0), 0u);
    for (const char* h :
         {"STATE", "SINCE", "LAST", "STARTS", "FAIL", "LAST-FAILURE", "MEMORY", "CPU", "UNIT"}) {
        EXPECT_NE(lines[0].find(h), std::string::npos) << h;
    }
    EXPECT_NE(lines[2].find("and-on.service"), std::string::npos);
    EXPECT_NE(lines[1].find("25M"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("1.234s"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("timeout"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find(" 5s "), std::string::npos) << "last request 5 s ago: " << lines[1];
}

TEST(StatusView, EveryLineFitsTheWidthWhateverItIs) {
    for (std::size_t width : {200u, 120u, 100u, 80u, 70u, 60u, 50u, 40u, 30u}) {
        std::string table = render_table(sample(), width, now);
        for (const std::string& l : lines_of(table)) {
            EXPECT_LE(display_width(l), width) << "width " << width << ":\n" << table;
        }
    }
}

TEST(StatusView, ALongUnitIsCutWithAnEllipsisBeforeAnyColumnGoes) {
    std::string table = render_table(sample(), 110, now);
    auto lines = lines_of(table);
    EXPECT_NE(lines[0].find("UNIT"), std::string::npos) << table;
    EXPECT_NE(lines[0].find("LAST-FAILURE"), std::string::npos) << table;
    EXPECT_NE(lines[2].find("\xE2\x80\xA6"), std::string::npos) << table;
    EXPECT_EQ(lines[2].find("and-on.service"), std::string::npos) << table;
    EXPECT_NE(lines[1].find("ondemand-podman@blog.service"), std::string::npos)
        << "a short unit is not cut: " << table;
}

TEST(StatusView, ANarrowTerminalDropsColumnsButKeepsAppStateMemoryAndCpu) {
    std::string table = render_table(sample(), 50, now);
    auto lines = lines_of(table);
    EXPECT_EQ(lines[0].find("UNIT"), std::string::npos) << table;
    for (const char* h : {"APP", "STATE", "MEMORY", "CPU"}) {
        EXPECT_NE(lines[0].find(h), std::string::npos) << h << "\n" << table;
    }
    EXPECT_NE(lines[1].find("25M"), std::string::npos) << table;
}

TEST(StatusView, HelperdDownShowsTheUnitsStateInParentheses) {
    app_view v;
    v.app = "blog";
    v.unit = "ondemand-exec@blog.service";
    v.unit_state = "inactive";
    auto lines = lines_of(render_table({v}, 0, now));
    EXPECT_NE(lines[1].find("(inactive)"), std::string::npos) << lines[1];
    EXPECT_TRUE(to_json(v, false)["state"].is_null());
    EXPECT_EQ(to_json(v, false)["unit_state"], "inactive");
}

TEST(StatusView, TerminalWidthComesFromColumns) {
    ::setenv("COLUMNS", "77", 1);
    EXPECT_EQ(terminal_width(), 77u);
    ::setenv("COLUMNS", "junk", 1);
    std::size_t w = terminal_width(); // the tty's, or unlimited when stdout is not one
    ::unsetenv("COLUMNS");
    EXPECT_EQ(w, terminal_width());
}

TEST(StatusView, DetailShowsTheAppFileAndTheEventsWithTimes) {
    app_view v = running("blog", "ondemand-exec@blog.service");
    v.file = "/etc/ondemand/apps/blog.conf";
    v.kind = "exec";
    v.socket = "/run/ondemand/apps/blog/app.sock";
    v.ready = "connect";
    v.start_timeout = "20s";
    std::string d = render_detail(v, now);
    EXPECT_NE(d.find("blog: ready since " + format_time(1795332840000) + " (60s ago)\n"),
              std::string::npos)
        << d;
    EXPECT_NE(d.find("ondemand-exec@blog.service (active)"), std::string::npos) << d;
    EXPECT_NE(d.find("/run/ondemand/apps/blog/app.sock"), std::string::npos) << d;
    EXPECT_NE(d.find("start timeout: 20s"), std::string::npos) << d;
    EXPECT_NE(d.find("idle timeout:  (nginx default)"), std::string::npos) << d;
    EXPECT_NE(d.find("last failure:  timeout: no socket at /x"), std::string::npos) << d;
    EXPECT_NE(d.find("failed (timeout)"), std::string::npos) << d;
    EXPECT_NE(d.find(format_time(1795332840000) + "  ready"), std::string::npos) << d;
}

TEST(StatusView, JsonHasNumbersAndNullsAndTheDetailFields) {
    app_view v = running("blog", "u.service");
    nlohmann::json j = to_json(v, false);
    EXPECT_EQ(j["memory_bytes"], 25 * 1024 * 1024 + 300 * 1024);
    EXPECT_EQ(j["cpu_ns"], 1'234'000'000u);
    EXPECT_EQ(j["last_failure"]["code"], "timeout");
    EXPECT_EQ(j["events"].size(), 4u);
    EXPECT_EQ(j["events"][1]["code"], "timeout");
    EXPECT_FALSE(j.contains("socket"));
    v.memory.reset();
    v.file = "/f.conf";
    j = to_json(v, true);
    EXPECT_TRUE(j["memory_bytes"].is_null());
    EXPECT_EQ(j["file"], "/f.conf");
    EXPECT_TRUE(j["start_timeout"].is_null());
}

TEST(StatusView, Formats) {
    EXPECT_EQ(format_bytes(std::nullopt), "-");
    EXPECT_EQ(format_bytes(512), "512B");
    EXPECT_EQ(format_bytes(1536), "1.5K");
    EXPECT_EQ(format_bytes(300ULL * 1024 * 1024), "300M");
    EXPECT_EQ(format_cpu(120'000'000), "0.120s");
    EXPECT_EQ(format_cpu(303'000'000'000ULL), "5m03s");
    EXPECT_EQ(format_age(0, now), "-");
    EXPECT_EQ(format_age(now - 3'600'000, now), "60m");
    EXPECT_EQ(format_time(1000), "1970-01-01 00:00:01.000 UTC");
}

} // namespace
