// helperd's logging: one line per event, to stderr with a level prefix ("info: ..."), or to the
// journal with structured fields when stderr is connected to it (JOURNAL_STREAM). See
// docs/helperd.md for the line formats the tests and operators rely on.
// Everything in helperd may include it; it must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_LOG_H
#define ONDEMAND_HELPERD_LOG_H

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ondemand::helperd {

enum class log_level { debug, info, warning, error };

std::string_view log_level_name(log_level level);
std::optional<log_level> parse_log_level(std::string_view name);

void set_log_level(log_level level);
bool log_enabled(log_level level);

// Chooses the journal when stderr is the journal stream named by JOURNAL_STREAM.
void init_log_target();

// Optional structured context of a log line: journal fields ONDEMAND_APP=, ONDEMAND_UNIT=,
// OBJECT_SYSTEMD_UNIT= (and the older APP=, UNIT=), and MESSAGE_ID= (message_ids.h).
struct log_context {
    std::string_view app;
    std::string_view unit;
    std::string_view message_id = {};
};

// The journal fields of one line, "NAME=value" each (what log_line hands sd_journal_sendv).
// See docs/helperd.md, "Logs", for which journalctl matches select them.
std::vector<std::string> journal_fields(log_level level, std::string_view text, log_context ctx);

void log_line(log_level level, std::string_view text, log_context ctx = {});

template <typename... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) {
    if (log_enabled(level)) {
        log_line(level, fmt::format(format, std::forward<Args>(args)...));
    }
}

template <typename... Args>
void log(log_context ctx, log_level level, fmt::format_string<Args...> format, Args&&... args) {
    if (log_enabled(level)) {
        log_line(level, fmt::format(format, std::forward<Args>(args)...), ctx);
    }
}

} // namespace ondemand::helperd

#endif
