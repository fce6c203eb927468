// Two worker policies, free of nginx so that GoogleTest checks them: which app is stopped to
// make room under ondemand_max_running, and how often the idle scan runs.
//
// Must not call: nginx, the network, or anything that changes an app record.
#ifndef ONDEMAND_POLICY_H
#define ONDEMAND_POLICY_H

#include <cstddef>
#include <cstdint>

#include "ondemand_app_state.h"

namespace ondemand {

// What a cold app that needs a running slot does under a cap on running apps.
struct eviction_choice {
    static constexpr std::size_t no_victim = static_cast<std::size_t>(-1);

    bool room = false;               // fewer apps than the cap run: start without a stop
    std::size_t victim = no_victim;  // else: the app to evict (begin_eviction()), if any
};

// Chooses the least recently used app that can be evicted: ready or frozen, nothing in
// flight or held, not keep_warm, not the app that needs the slot. Lock-free reads; the
// caller holds the zone mutex and confirms with begin_eviction().
class victim_chooser {
  public:
    // Each app once, with its index in the caller's list.
    void consider(std::size_t index, const app_record& r, bool keep_warm, bool is_requester);

    // The choice under a cap of `max_running` apps (0 never gets here: no cap).
    eviction_choice choose(std::uint64_t max_running) const;

  private:
    std::uint64_t running_ = 0;
    std::size_t lru_ = eviction_choice::no_victim;
    const app_record* lru_record_ = nullptr;
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
