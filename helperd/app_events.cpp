// app_events: see app_events.h. Must not include any other helperd header.
#include "app_events.h"

#include <fmt/format.h>

namespace ondemand::helperd {

std::string_view app_event_name(app_event_kind kind) {
    switch (kind) {
    case app_event_kind::start:
        return "start";
    case app_event_kind::ready:
        return "ready";
    case app_event_kind::failed:
        return "failed";
    case app_event_kind::stop:
        return "stop";
    case app_event_kind::stopped:
        return "stopped";
    case app_event_kind::freeze:
        return "freeze";
    case app_event_kind::down:
        return "down";
    }
    return "start";
}

std::uint64_t to_unix_ms(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    return ms > 0 ? static_cast<std::uint64_t>(ms) : 0;
}

void app_events::record(app_event_kind kind, std::chrono::system_clock::time_point at,
                        proto::failure code) {
    ring_[next_] = app_event{kind, to_unix_ms(at),
                             kind == app_event_kind::failed ? code : proto::failure::other};
    next_ = (next_ + 1) % capacity;
    if (size_ < capacity) {
        ++size_;
    }
}

std::vector<app_event> app_events::recent() const {
    std::vector<app_event> out;
    out.reserve(size_);
    std::size_t first = (next_ + capacity - size_) % capacity;
    for (std::size_t i = 0; i < size_; ++i) {
        out.push_back(ring_[(first + i) % capacity]);
    }
    return out;
}

std::string app_events::to_attr() const {
    std::string out;
    for (const app_event& e : recent()) {
        if (!out.empty()) {
            out += ',';
        }
        out += app_event_name(e.kind);
        if (e.kind == app_event_kind::failed) {
            out += ':';
            out += proto::failure_name(e.code);
        }
        out += fmt::format("@{}", e.unix_ms);
    }
    return out;
}

std::string percent_encode(std::string_view text, std::size_t max_input) {
    if (text.size() > max_input) {
        text = text.substr(0, max_input);
    }
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        auto b = static_cast<unsigned char>(c);
        if (b > ' ' && b < 0x7f && b != '%') {
            out.push_back(c);
        } else {
            out += fmt::format("%{:02X}", b);
        }
    }
    return out;
}

} // namespace ondemand::helperd
