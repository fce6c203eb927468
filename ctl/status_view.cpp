#include "status_view.h"

#include "ondemand_protocol.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ondemand::ctl {

namespace {

constexpr std::string_view ellipsis = "\xE2\x80\xA6"; // …

std::optional<std::uint64_t> to_u64(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

std::string dash_if_empty(const std::string& s) {
    return s.empty() ? "-" : s;
}

// `text` cut to `width` display columns, ending in "…" when cut.
std::string fit(const std::string& text, std::size_t width) {
    if (display_width(text) <= width) {
        return text;
    }
    if (width == 0) {
        return {};
    }
    std::string out;
    std::size_t cols = 0;
    for (std::size_t i = 0; i < text.size() && cols + 1 < width; ++i) {
        out.push_back(text[i]);
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
            ++cols;
        }
    }
    // do not leave half a code point before the ellipsis
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80) != 0 &&
           (static_cast<unsigned char>(out.back()) & 0xC0) != 0xC0) {
        out.pop_back();
    }
    if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0xC0) {
        out.pop_back();
    }
    out += ellipsis;
    return out;
}

std::string pad(const std::string& text, std::size_t width, bool right) {
    std::size_t w = display_width(text);
    if (w >= width) {
        return text;
    }
    std::string spaces(width - w, ' ');
    return right ? spaces + text : text + spaces;
}

std::string number_or_dash(std::optional<std::uint64_t> v) {
    return v ? std::to_string(*v) : "-";
}

nlohmann::json json_number(std::optional<std::uint64_t> v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json json_time(std::uint64_t ms) {
    return ms == 0 ? nlohmann::json(nullptr) : nlohmann::json(ms);
}

std::string state_text(const app_view& a) {
    if (a.from_helperd || a.state == "cold") {
        return a.state.empty() ? "-" : a.state;
    }
    // helperd is down: what systemd says of the unit, in parentheses
    return "(" + (a.unit_state.empty() ? std::string("unknown") : a.unit_state) + ")";
}

} // namespace

std::size_t display_width(std::string_view text) {
    std::size_t n = 0;
    for (char c : text) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++n;
        }
    }
    return n;
}

std::vector<event_view> parse_events(std::string_view value) {
    std::vector<event_view> out;
    while (!value.empty()) {
        std::size_t comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        std::size_t at = item.rfind('@');
        if (at == std::string_view::npos || at == 0) {
            continue;
        }
        auto ms = to_u64(item.substr(at + 1));
        if (!ms) {
            continue;
        }
        std::string_view name = item.substr(0, at);
        event_view e;
        e.unix_ms = *ms;
        if (std::size_t colon = name.find(':'); colon != std::string_view::npos) {
            e.code = std::string(name.substr(colon + 1));
            name = name.substr(0, colon);
        }
        e.event = std::string(name);
        out.push_back(std::move(e));
    }
    return out;
}

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return -1;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
            hex(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
            i += 2;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

void apply_status_attrs(app_view& v, std::string_view attrs) {
    std::string_view key;
    std::string_view value;
    while (proto::next_attr(attrs, key, value)) {
        if (key == "since") {
            v.since_ms = to_u64(value).value_or(0);
        } else if (key == "last") {
            v.last_ms = to_u64(value).value_or(0);
        } else if (key == "starts") {
            v.starts = to_u64(value);
        } else if (key == "failures") {
            v.failures = to_u64(value);
        } else if (key == "last_failure") {
            v.last_failure = std::string(value);
        } else if (key == "last_failure_detail") {
            v.last_failure_detail = percent_decode(value);
        } else if (key == "events") {
            v.events = parse_events(value);
        }
    }
}

std::size_t terminal_width() {
    if (const char* c = std::getenv("COLUMNS"); c != nullptr && *c != '\0') {
        if (auto n = to_u64(c); n && *n > 0 && *n < 100000) {
            return static_cast<std::size_t>(*n);
        }
    }
    winsize ws{};
    if (::isatty(STDOUT_FILENO) == 1 && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
        ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 0;
}

std::string format_bytes(std::optional<std::uint64_t> bytes) {
    if (!bytes) {
        return "-";
    }
    const char* units[] = {"B", "K", "M", "G", "T", "P"};
    double v = static_cast<double>(*bytes);
    std::size_t u = 0;
    while (v >= 1024.0 && u + 1 < std::size(units)) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    if (u == 0) {
        std::snprintf(buf, sizeof(buf), "%lluB", static_cast<unsigned long long>(*bytes));
    } else if (v < 10.0) {
        std::snprintf(buf, sizeof(buf), "%.1f%s", v, units[u]);
    } else {
        std::snprintf(buf, sizeof(buf), "%.0f%s", v, units[u]);
    }
    return buf;
}

std::string format_cpu(std::optional<std::uint64_t> ns) {
    if (!ns) {
        return "-";
    }
    char buf[32];
    std::uint64_t ms = *ns / 1'000'000;
    if (ms < 10'000) {
        std::snprintf(buf, sizeof(buf), "%llu.%03llus", static_cast<unsigned long long>(ms / 1000),
                      static_cast<unsigned long long>(ms % 1000));
    } else if (ms < 60'000) {
        std::snprintf(buf, sizeof(buf), "%llu.%llus", static_cast<unsigned long long>(ms / 1000),
                      static_cast<unsigned long long>(ms % 1000 / 100));
    } else if (ms < 3'600'000) {
        std::snprintf(buf, sizeof(buf), "%llum%02llus",
                      static_cast<unsigned long long>(ms / 60'000),
                      static_cast<unsigned long long>(ms % 60'000 / 1000));
    } else {
        std::snprintf(buf, sizeof(buf), "%lluh%02llum",
                      static_cast<unsigned long long>(ms / 3'600'000),
                      static_cast<unsigned long long>(ms % 3'600'000 / 60'000));
    }
    return buf;
}

std::string format_age(std::uint64_t then_ms, std::uint64_t now_ms) {
    if (then_ms == 0) {
        return "-";
    }
    std::uint64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
    if (s < 120) {
        return std::to_string(s) + "s";
    }
    if (s < 120ULL * 60) {
        return std::to_string(s / 60) + "m";
    }
    if (s < 48ULL * 3600) {
        return std::to_string(s / 3600) + "h";
    }
    return std::to_string(s / 86400) + "d";
}

std::string format_time(std::uint64_t unix_ms) {
    if (unix_ms == 0) {
        return "-";
    }
    std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof(buf) - n, ".%03u UTC", static_cast<unsigned>(unix_ms % 1000));
    return buf;
}

std::string render_table(const std::vector<app_view>& apps, std::size_t width,
                         std::uint64_t now_ms) {
    struct column {
        std::string header;
        bool right = false;
        int drop_order = 0; // 0: never dropped; 1 first
        std::vector<std::string> cells;
        std::size_t width = 0;
        bool shown = true;
    };
    std::vector<column> cols = {
        {"APP", false, 0, {}, 0, true},          {"STATE", false, 0, {}, 0, true},
        {"SINCE", true, 3, {}, 0, true},         {"LAST", true, 6, {}, 0, true},
        {"STARTS", true, 5, {}, 0, true},        {"FAIL", true, 4, {}, 0, true},
        {"LAST-FAILURE", false, 2, {}, 0, true}, {"MEMORY", true, 0, {}, 0, true},
        {"CPU", true, 0, {}, 0, true},           {"UNIT", false, 1, {}, 0, true},
    };
    enum { c_app, c_state, c_since, c_last, c_starts, c_fail, c_lastfail, c_mem, c_cpu, c_unit };
    for (const app_view& a : apps) {
        cols[c_app].cells.push_back(a.app);
        cols[c_state].cells.push_back(state_text(a));
        cols[c_since].cells.push_back(format_age(a.since_ms, now_ms));
        cols[c_last].cells.push_back(format_age(a.last_ms, now_ms));
        cols[c_starts].cells.push_back(number_or_dash(a.starts));
        cols[c_fail].cells.push_back(number_or_dash(a.failures));
        cols[c_lastfail].cells.push_back(dash_if_empty(a.last_failure));
        cols[c_mem].cells.push_back(format_bytes(a.memory));
        cols[c_cpu].cells.push_back(format_cpu(a.cpu_ns));
        cols[c_unit].cells.push_back(a.unit);
    }
    for (column& c : cols) {
        c.width = display_width(c.header);
        for (const std::string& s : c.cells) {
            c.width = std::max(c.width, display_width(s));
        }
    }
    constexpr std::size_t gap = 2;
    constexpr std::size_t min_unit = 16;
    constexpr std::size_t min_app = 8;
    auto total = [&] {
        std::size_t t = 0, n = 0;
        for (const column& c : cols) {
            if (c.shown) {
                t += c.width;
                ++n;
            }
        }
        return t + (n > 0 ? (n - 1) * gap : 0);
    };
    if (width > 0) {
        int next_drop = 1;
        while (total() > width) {
            column& unit = cols[c_unit];
            if (unit.shown && unit.width > min_unit) {
                unit.width = std::max(min_unit, unit.width - std::min(unit.width, total() - width));
                continue;
            }
            auto it = std::find_if(cols.begin(), cols.end(),
                                   [&](const column& c) { return c.drop_order == next_drop; });
            if (it != cols.end()) {
                it->shown = false;
                ++next_drop;
                continue;
            }
            column& app = cols[c_app];
            std::size_t over = total() - width;
            app.width = app.width > min_app + over ? app.width - over : min_app;
            break; // as narrow as it gets
        }
    }
    std::string out;
    auto emit = [&](auto cell_of) {
        std::string line;
        std::size_t shown_before = 0;
        for (std::size_t i = 0; i < cols.size(); ++i) {
            const column& c = cols[i];
            if (!c.shown) {
                continue;
            }
            if (shown_before++ > 0) {
                line += std::string(gap, ' ');
            }
            bool last = true;
            for (std::size_t j = i + 1; j < cols.size(); ++j) {
                last = last && !cols[j].shown;
            }
            std::string text = fit(cell_of(c), c.width);
            line += last && !c.right ? text : pad(text, c.width, c.right);
        }
        out += line;
        out += '\n';
    };
    emit([](const column& c) { return c.header; });
    for (std::size_t r = 0; r < apps.size(); ++r) {
        emit([r](const column& c) { return c.cells[r]; });
    }
    return out;
}

std::string render_detail(const app_view& a, std::uint64_t now_ms) {
    std::string out;
    auto line = [&](std::string_view label, const std::string& value) {
        out += "  ";
        out += label;
        out += std::string(label.size() < 15 ? 15 - label.size() : 1, ' ');
        out += value;
        out += '\n';
    };
    auto when = [&](std::uint64_t ms) {
        return ms == 0 ? std::string("-")
                       : format_time(ms) + " (" + format_age(ms, now_ms) + " ago)";
    };
    out += a.app + ": " + state_text(a);
    if (a.since_ms != 0) {
        out += " since " + when(a.since_ms);
    }
    out += '\n';
    line("unit:", a.unit + (a.unit_state.empty() ? "" : " (" + a.unit_state + ")"));
    line("app file:", a.file.empty() ? "-" : a.file + " (kind " + a.kind + ")");
    line("socket:", dash_if_empty(a.socket));
    line("ready:", dash_if_empty(a.ready));
    line("start timeout:", a.start_timeout.empty() ? "(nginx default)" : a.start_timeout);
    line("idle timeout:", a.idle_timeout.empty() ? "(nginx default)" : a.idle_timeout);
    line("last request:", when(a.last_ms));
    line("starts:", number_or_dash(a.starts));
    line("failures:", number_or_dash(a.failures));
    line("last failure:",
         a.last_failure.empty()
             ? std::string("-")
             : a.last_failure +
                   (a.last_failure_detail.empty() ? "" : ": " + a.last_failure_detail));
    line("memory:", format_bytes(a.memory));
    line("CPU time:", format_cpu(a.cpu_ns));
    if (a.events.empty()) {
        line("events:", a.from_helperd ? "-" : "(helperd is not running)");
    } else {
        out += "  events:\n";
        for (const event_view& e : a.events) {
            out += "    " + format_time(e.unix_ms) + "  " + e.event +
                   (e.code.empty() ? "" : " (" + e.code + ")") + '\n';
        }
    }
    return out;
}

nlohmann::json to_json(const app_view& a, bool detail) {
    nlohmann::json j = {
        {"app", a.app},
        {"state",
         a.from_helperd || a.state == "cold" ? nlohmann::json(a.state) : nlohmann::json(nullptr)},
        {"unit", a.unit},
        {"unit_state",
         a.unit_state.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.unit_state)},
        {"since", json_time(a.since_ms)},
        {"last_activity", json_time(a.last_ms)},
        {"starts", json_number(a.starts)},
        {"failures", json_number(a.failures)},
        {"last_failure",
         a.last_failure.empty()
             ? nlohmann::json(nullptr)
             : nlohmann::json{{"code", a.last_failure}, {"detail", a.last_failure_detail}}},
        {"memory_bytes", json_number(a.memory)},
        {"cpu_ns", json_number(a.cpu_ns)},
    };
    nlohmann::json events = nlohmann::json::array();
    for (const event_view& e : a.events) {
        nlohmann::json ev = {{"event", e.event}, {"time", e.unix_ms}};
        if (!e.code.empty()) {
            ev["code"] = e.code;
        }
        events.push_back(std::move(ev));
    }
    j["events"] = std::move(events);
    if (detail) {
        auto str_or_null = [](const std::string& s) {
            return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
        };
        j["file"] = str_or_null(a.file);
        j["kind"] = str_or_null(a.kind);
        j["socket"] = str_or_null(a.socket);
        j["ready"] = str_or_null(a.ready);
        j["start_timeout"] = str_or_null(a.start_timeout);
        j["idle_timeout"] = str_or_null(a.idle_timeout);
    }
    return j;
}

} // namespace ondemand::ctl
