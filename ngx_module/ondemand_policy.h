// Two worker policies, free of nginx so that GoogleTest checks them: which apps are stopped to
// make room under ondemand_max_running and ondemand_max_memory, and how often the idle scan
// runs.
//
// Must not call: nginx, the network, or anything that changes an app record.
#ifndef ONDEMAND_POLICY_H
#define ONDEMAND_POLICY_H

#include <array>
#include <cstddef>
#include <cstdint>

#include "ondemand_app_state.h"

namespace ondemand {

// The limits a cold app must start under: ondemand_max_running (0: none) and
// ondemand_max_memory (0: none), with the memory the app is expected to take.
struct eviction_limits {
    std::uint64_t max_running = 0;
    std::uint64_t max_memory = 0;
    std::uint64_t need_bytes = 0;
};

// What a cold app that needs a running slot (and room in the memory budget) does.
struct eviction_choice {
    static constexpr std::size_t no_victim = static_cast<std::size_t>(-1);
    // At most this many apps are stopped to make room for one start.
    static constexpr std::size_t max_victims = 16;
    enum class limit : std::uint8_t { none, running, memory };

    bool room = false;               // fits without a stop: start at once
    std::size_t victim = no_victim;  // the first app to evict (begin_eviction()), if any
    // Every app to evict, least recently used first (victims[0] == victim); none when the
    // apps that can be stopped do not free enough: `blocked` then says which limit.
    std::array<std::size_t, max_victims> victims{};
    std::size_t nvictims = 0;
    limit blocked = limit::none;
    std::uint64_t running = 0;       // apps running (not cold)
    std::uint64_t memory_in_use = 0; // their memory, less that of the apps being stopped
    std::uint64_t freed_bytes = 0;   // what the victims free (blocked: all idle apps could)
};

// The memory an app counts for under ondemand_max_memory: 0 while cold or stopping (a stop
// that has begun frees it), else its last reported figure (MEMORY), else its expected size.
std::uint64_t memory_in_use(const app_record& r, std::uint64_t expect_bytes);
// What a cold app is expected to take: the largest figure ever reported for it, else
// `expect_bytes` (ondemand_max_memory's expect=).
std::uint64_t memory_expected(const app_record& r, std::uint64_t expect_bytes);

// Chooses the least recently used apps that can be evicted: ready or frozen, nothing in
// flight or held, not keep_warm, not the app that needs the slot; as many as it takes to
// get under both limits. Lock-free reads; the caller holds the zone mutex and confirms each
// with begin_eviction().
class victim_chooser {
  public:
    // Each app once, with its index in the caller's list and the memory it counts for
    // (memory_in_use()).
    void consider(std::size_t index, const app_record& r, bool keep_warm, bool is_requester,
                  std::uint64_t memory_bytes = 0);

    eviction_choice choose(const eviction_limits& limits) const;
    // Under a cap of `max_running` apps only (0 never gets here: no cap).
    eviction_choice choose(std::uint64_t max_running) const {
        return choose(eviction_limits{max_running, 0, 0});
    }

  private:
    struct candidate {
        std::size_t index;
        std::uint64_t last_active_ms;
        std::uint64_t memory_bytes;
    };

    std::uint64_t running_ = 0;
    std::uint64_t memory_ = 0;
    // The least recently used candidates, oldest first.
    std::array<candidate, eviction_choice::max_victims> lru_{};
    std::size_t nlru_ = 0;
};

// The idle scan's interval in ms, folding in one app: a quarter of its idle_timeout (and of
// its frozen_timeout when it freezes), between 50 ms and 1 s, so that the app stops within
// about a second of its timeout. `so_far` is the interval of the apps before it (0: none
// yet); an app with idle_timeout 0 is never stopped and leaves it unchanged. 0 in the end:
// no app stops, no scan.
std::uint64_t idle_scan_interval(std::uint64_t so_far, std::uint64_t idle_timeout_ms, bool freeze,
                                 std::uint64_t frozen_timeout_ms);

} // namespace ondemand

#endif
