// The eviction choice and the idle scan interval (see ondemand_policy.h).
//
// Must not call: nginx, the network, or anything that changes an app record.
#include "ondemand_policy.h"

#include <algorithm>

namespace ondemand {

namespace {

constexpr std::uint64_t scan_min_ms = 50;
constexpr std::uint64_t scan_max_ms = 1000;

} // namespace

void victim_chooser::consider(std::size_t index, const app_record& r, bool keep_warm,
                              bool is_requester) {
    if (!running(r)) {
        return;
    }

    running_++;

    if (is_requester || keep_warm || !evictable(r)) {
        return;
    }

    if (lru_record_ == nullptr || r.last_active_ms.load() < lru_record_->last_active_ms.load()) {
        lru_ = index;
        lru_record_ = &r;
    }
}

eviction_choice victim_chooser::choose(std::uint64_t max_running) const {
    eviction_choice c;

    if (running_ < max_running) {
        c.room = true;
        return c;
    }

    c.victim = lru_;
    return c;
}

std::uint64_t idle_scan_interval(std::uint64_t so_far, std::uint64_t idle_timeout_ms, bool freeze,
                                 std::uint64_t frozen_timeout_ms) {
    if (idle_timeout_ms == 0) {
        return so_far;
    }

    std::uint64_t interval = std::max(std::min(idle_timeout_ms / 4, scan_max_ms), scan_min_ms);

    if (freeze && frozen_timeout_ms != 0) {
        interval = std::max(std::min(interval, frozen_timeout_ms / 4), scan_min_ms);
    }

    return (so_far == 0 || interval < so_far) ? interval : so_far;
}

} // namespace ondemand
