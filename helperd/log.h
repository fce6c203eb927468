// helperd's logging: one line per event, to stderr with a level prefix ("info: ..."), or to the
// journal with structured fields when stderr is connected to it (JOURNAL_STREAM). See
// docs/helperd.md for the line formats the tests and operators rely on.
// Everything in helperd may include it; it must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_LOG_H
#define ONDEMAND_HELPERD_LOG_H

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// Bounds how often one kind of line is logged, so that a peer cannot flood the journal (one
// refused line per junk line sent would be millions): up to `burst` lines per `window`, then
// none until the window ends; the next line let through says how many were held back.
class log_limiter {
  public:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t default_burst = 10;
    static constexpr std::chrono::seconds default_window{10};

    explicit log_limiter(std::size_t burst = default_burst, clock::duration window = default_window)
        : burst_(burst), window_(window) {}

    // Whether a line may be logged at `now`. When it may, `held_back` receives the number of
    // lines refused since the last one let through (0 usually), and the count restarts.
    bool allow(clock::time_point now, std::uint64_t& held_back);
    // Lines refused since the last one let through (for a last word when the peer leaves).
    std::uint64_t held_back() const { return held_back_; }

  private:
    std::size_t burst_;
    clock::duration window_;
    clock::time_point window_start_{};
    std::size_t in_window_ = 0;
    std::uint64_t held_back_ = 0;
};

// ", N similar lines not logged" when N > 0: the suffix for a line a log_limiter let through.
std::string held_back_note(std::uint64_t held_back);

} // namespace ondemand::helperd

#endif
