// app_events: the last few things that happened to an app (start, ready, failed, stop, stopped,
// freeze, down) with their unix-ms times, for STATUS' `events=` field (docs/PROTOCOL.md) and
// `ondemandctl status APP`. A fixed ring: the oldest event falls out when a sixth comes.
// Must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_APP_EVENTS_H
#define ONDEMAND_HELPERD_APP_EVENTS_H

#include "ondemand_protocol.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

enum class app_event_kind : std::uint8_t { start, ready, failed, stop, stopped, freeze, down };

// The wire token: "start", "ready", "failed", "stop", "stopped", "freeze", "down".
std::string_view app_event_name(app_event_kind kind);

struct app_event {
    app_event_kind kind = app_event_kind::start;
    std::uint64_t unix_ms = 0;
    proto::failure code = proto::failure::other; // for `failed` only
    bool operator==(const app_event&) const = default;
};

class app_events {
  public:
    static constexpr std::size_t capacity = 5;

    void record(app_event_kind kind, std::chrono::system_clock::time_point at,
                proto::failure code = proto::failure::other);
    // Oldest first, at most `capacity`.
    std::vector<app_event> recent() const;
    // "start@1795332776040,ready@1795332776123,failed:timeout@1795332806040" (oldest first;
    // empty when nothing happened yet): printable, no spaces, so a STATUS attr value.
    std::string to_attr() const;

  private:
    std::array<app_event, capacity> ring_{};
    std::size_t next_ = 0; // where the next event goes
    std::size_t size_ = 0;
};

// Milliseconds since the epoch (0 for the epoch itself or earlier).
std::uint64_t to_unix_ms(std::chrono::system_clock::time_point t);

// A STATUS attr value for free text: '%' and every byte outside printable non-space ASCII
// become %XX (so a space is %20); cut at `max_input` bytes of the input first.
std::string percent_encode(std::string_view text, std::size_t max_input);

} // namespace ondemand::helperd

#endif
