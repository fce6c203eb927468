// status_view: what `ondemandctl status` shows (docs/units.md, "ondemandctl status"): one row
// per app merged from helperd's STATUS, the app files and systemd, laid out to fit the
// terminal, one app in detail, or JSON. Pure functions of their inputs (no I/O but
// terminal_width()), so the layout is unit-tested.
#ifndef ONDEMAND_CTL_STATUS_VIEW_H
#define ONDEMAND_CTL_STATUS_VIEW_H

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::ctl {

struct event_view {
    std::string event; // start, ready, failed, stop, stopped, freeze, down (or a newer one)
    std::string code;  // for failed: the failure code
    std::uint64_t unix_ms = 0;
};

struct app_view {
    std::string app;
    std::string state; // helperd's; "cold" for an app file helperd has no record of
    std::string unit;
    bool from_helperd = false; // helperd answered STATUS (false: helperd is down)
    // From STATUS (0 / empty when helperd did not send them).
    std::uint64_t since_ms = 0;
    std::uint64_t last_ms = 0; // the last request (START, WAIT or USE)
    std::optional<std::uint64_t> starts, failures;
    std::string last_failure, last_failure_detail;
    std::vector<event_view> events;
    // From systemd.
    std::string unit_state; // ActiveState, empty when unread
    std::optional<std::uint64_t> memory, cpu_ns;
    // From the app file (empty when there is none).
    std::string file, kind, socket, ready, start_timeout, idle_timeout;
};

// Fills `v` from an APP line's key=value fields (unknown keys are ignored).
void apply_status_attrs(app_view& v, std::string_view attrs);
// "start@1,failed:timeout@2" -> events; malformed items are skipped.
std::vector<event_view> parse_events(std::string_view value);
// %XX -> byte (a malformed escape stays as it is).
std::string percent_decode(std::string_view text);

// 0 = unlimited. $COLUMNS when set to a positive number, else the terminal's width from
// ioctl(TIOCGWINSZ) on stdout, else (not a terminal) unlimited.
std::size_t terminal_width();

// "12K", "340.5M", "1.2G" (1024-based); "-" for none.
std::string format_bytes(std::optional<std::uint64_t> bytes);
// "0.120s", "12.3s", "5m03s", "2h05m"; "-" for none.
std::string format_cpu(std::optional<std::uint64_t> ns);
// "12s", "5m", "3h", "2d" between `then` and `now` (unix ms); "-" for 0.
std::string format_age(std::uint64_t then_ms, std::uint64_t now_ms);
// "2026-12-01 23:20:11.123 UTC"; "-" for 0.
std::string format_time(std::uint64_t unix_ms);

// The table, header first, every line ending in '\n'. With `width` > 0 no line is wider: the
// UNIT column is cut with "…" first (down to 16 columns), then columns are dropped (UNIT,
// LAST-FAILURE, SINCE, FAIL, STARTS, LAST), then the APP column is cut.
std::string render_table(const std::vector<app_view>& apps, std::size_t width,
                         std::uint64_t now_ms);
// One app in detail: unit, app file, socket, readiness, timeouts, counters, the last failure,
// memory, CPU, and the events with their times.
std::string render_detail(const app_view& app, std::uint64_t now_ms);

// JSON for scripts: times in unix ms, null for what is not known.
nlohmann::json to_json(const app_view& app, bool detail);

// Display width of UTF-8 text (code points; "…" is one column).
std::size_t display_width(std::string_view text);

} // namespace ondemand::ctl

#endif
