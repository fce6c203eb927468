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

std::uint64_t memory_in_use(const app_record& r, std::uint64_t expect_bytes) {
    app_state s = r.state.load();
    if (s == app_state::cold || s == app_state::stopping) {
        return 0;
    }
    std::uint64_t now = r.memory_bytes.load(std::memory_order_relaxed);
    return now != 0 ? now : memory_expected(r, expect_bytes);
}

std::uint64_t memory_expected(const app_record& r, std::uint64_t expect_bytes) {
    std::uint64_t peak = r.memory_peak.load(std::memory_order_relaxed);
    return peak != 0 ? peak : expect_bytes;
}

void victim_chooser::consider(std::size_t index, const app_record& r, bool keep_warm,
                              bool is_requester, std::uint64_t memory_bytes) {
    if (!running(r)) {
        return;
    }

    running_++;
    memory_ += memory_bytes;

    if (is_requester || keep_warm || !evictable(r)) {
        return;
    }

    // Keep the max_victims least recently used, oldest first (insertion into a short array).
    candidate c{index, r.last_active_ms.load(), memory_bytes};
    std::size_t at = nlru_;
    while (at > 0 && lru_[at - 1].last_active_ms > c.last_active_ms) {
        at--;
    }
    if (at == lru_.size()) {
        return;
    }
    std::size_t last = nlru_ < lru_.size() ? nlru_ : lru_.size() - 1;
    for (std::size_t i = last; i > at; i--) {
        lru_[i] = lru_[i - 1];
    }
    lru_[at] = c;
    if (nlru_ < lru_.size()) {
        nlru_++;
    }
}

eviction_choice victim_chooser::choose(const eviction_limits& limits) const {
    eviction_choice c;
    c.running = running_;
    c.memory_in_use = memory_;

    // Slots to free: the new app takes one.
    std::uint64_t slots = 0;
    if (limits.max_running != 0 && running_ >= limits.max_running) {
        slots = running_ - limits.max_running + 1;
    }
    // Bytes to free.
    std::uint64_t bytes = 0;
    if (limits.max_memory != 0 && memory_ + limits.need_bytes > limits.max_memory) {
        bytes = memory_ + limits.need_bytes - limits.max_memory;
    }

    if (slots == 0 && bytes == 0) {
        c.room = true;
        return c;
    }

    std::uint64_t freed_slots = 0;
    for (std::size_t i = 0; i < nlru_ && (freed_slots < slots || c.freed_bytes < bytes); i++) {
        c.victims[c.nvictims++] = lru_[i].index;
        freed_slots++;
        c.freed_bytes += lru_[i].memory_bytes;
    }

    if (freed_slots < slots) {
        c.blocked = eviction_choice::limit::running;
    } else if (c.freed_bytes < bytes) {
        c.blocked = eviction_choice::limit::memory;
    }

    if (c.blocked != eviction_choice::limit::none) {
        c.nvictims = 0; // freed_bytes stays: what the idle apps could free, for the log
        return c;
    }

    c.victim = c.victims[0];
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
