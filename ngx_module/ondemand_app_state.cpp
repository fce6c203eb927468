// The transitions of the per-app state machine (see ondemand_app_state.h).
//
// Must not call: nginx, the network, or anything outside this state machine.
#include "ondemand_app_state.h"

namespace ondemand {

std::size_t this_worker_slot = 0;

const char* app_state_name(app_state s) {
    switch (s) {
    case app_state::cold:
        return "cold";
    case app_state::starting:
        return "starting";
    case app_state::ready:
        return "ready";
    case app_state::stopping:
        return "stopping";
    case app_state::freezing:
        return "freezing";
    case app_state::frozen:
        return "frozen";
    }
    return "unknown";
}

namespace {

request_action take_start(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                          std::uint64_t start_timeout_ms) {
    r.gen.fetch_add(1);
    r.starter_pid.store(pid);
    r.deadline_ms.store(now_ms + start_timeout_ms);
    r.state.store(app_state::starting);
    r.counters.bump(r.counters.starts);
    return request_action::hold_and_start;
}

} // namespace

request_action on_request(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                          std::uint64_t start_timeout_ms) {
    switch (r.state.load()) {
    case app_state::ready:
        return request_action::proxy;
    case app_state::cold:
    case app_state::frozen: // START thaws it
        return take_start(r, pid, now_ms, start_timeout_ms);
    case app_state::starting:
        // A start whose owner died or lost its helper is taken over after its deadline.
        if (now_ms >= r.deadline_ms.load()) {
            return take_start(r, pid, now_ms, start_timeout_ms);
        }
        return request_action::hold_and_wait;
    case app_state::stopping:
    case app_state::freezing:
        // A stop that never reported back (helper gone) is taken over the same way.
        if (now_ms >= r.deadline_ms.load()) {
            return take_start(r, pid, now_ms, start_timeout_ms);
        }
        return request_action::hold;
    }
    return request_action::hold;
}

namespace {

// Shared by idle stops, freezes and evictions: the state changes first, then in_flight is
// read (the mirror image of warm_enter()).
bool stop_unless_busy(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                      std::uint64_t stop_timeout_ms, std::atomic<std::uint64_t>& counter,
                      app_state to = app_state::stopping) {
    app_state from = r.state.load();
    r.state.store(to);
    if (r.in_flight.load() != 0) {
        r.state.store(from);
        return false;
    }
    r.starter_pid.store(pid);
    r.deadline_ms.store(now_ms + stop_timeout_ms);
    r.counters.bump(counter);
    return true;
}

} // namespace

bool begin_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                std::uint64_t idle_timeout_ms, std::uint64_t stop_timeout_ms) {
    return looks_idle(r, now_ms, idle_timeout_ms) &&
           stop_unless_busy(r, pid, now_ms, stop_timeout_ms, r.counters.idle_stops);
}

bool begin_eviction(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                    std::uint64_t stop_timeout_ms) {
    return evictable(r) && stop_unless_busy(r, pid, now_ms, stop_timeout_ms, r.counters.evictions);
}

bool begin_freeze(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                  std::uint64_t idle_timeout_ms, std::uint64_t freeze_timeout_ms) {
    return looks_idle(r, now_ms, idle_timeout_ms) &&
           stop_unless_busy(r, pid, now_ms, freeze_timeout_ms, r.counters.freezes,
                            app_state::freezing);
}

bool on_frozen(app_record& r, std::uint64_t gen) {
    if (gen != r.gen.load() || r.state.load() != app_state::freezing) {
        return false;
    }
    r.state.store(app_state::frozen);
    return true;
}

bool on_freeze_failed(app_record& r, std::uint64_t gen) {
    if (gen != r.gen.load() || r.state.load() != app_state::freezing) {
        return false;
    }
    r.state.store(app_state::ready);
    return true;
}

bool on_stop_refused(app_record& r, std::uint64_t gen) {
    app_state s = r.state.load();
    if (gen != r.gen.load() || (s != app_state::stopping && s != app_state::freezing)) {
        return false;
    }
    r.state.store(app_state::ready);
    return true;
}

std::uint64_t use_lease(const app_record& r, std::uint64_t now_ms, std::uint64_t idle_timeout_ms) {
    // idle_timeout=0 (never stopped here): a day, renewed while requests come.
    constexpr std::uint64_t forever_ms = 24ULL * 3600 * 1000;
    std::uint64_t idle = idle_timeout_ms != 0 ? idle_timeout_ms : forever_ms;
    if (r.in_flight.load() != 0) {
        return idle;
    }
    std::uint64_t last = r.last_active_ms.load();
    std::uint64_t since = now_ms > last ? now_ms - last : 0;
    return since < idle ? idle - since : 0;
}

bool begin_frozen_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                       std::uint64_t frozen_timeout_ms, std::uint64_t stop_timeout_ms) {
    if (frozen_timeout_ms == 0 || r.state.load() != app_state::frozen) {
        return false;
    }
    std::uint64_t last = r.last_active_ms.load();
    if (now_ms < last || now_ms - last < frozen_timeout_ms) {
        return false;
    }
    return stop_unless_busy(r, pid, now_ms, stop_timeout_ms, r.counters.idle_stops);
}

bool on_stopped(app_record& r, std::uint64_t gen) {
    if (gen != r.gen.load() || r.state.load() != app_state::stopping) {
        return false;
    }
    r.state.store(app_state::cold);
    return true;
}

bool on_ready(app_record& r, std::uint64_t gen, std::uint64_t now_ms) {
    if (gen != r.gen.load()) {
        return false;
    }
    app_state s = r.state.load();
    if (s == app_state::ready) {
        return true;
    }
    if (s != app_state::starting) {
        return false;
    }
    r.last_active_ms.store(now_ms);
    r.state.store(app_state::ready);
    return true;
}

bool on_failed(app_record& r, std::uint64_t gen) {
    if (gen != r.gen.load() || r.state.load() != app_state::starting) {
        return false;
    }
    r.counters.bump(r.counters.failures);
    r.state.store(app_state::cold);
    return true;
}

bool on_down(app_record& r) {
    app_state s = r.state.load();
    if (s != app_state::ready && s != app_state::frozen) {
        return false;
    }
    r.state.store(app_state::cold);
    return true;
}

bool abandon_start(app_record& r, std::int64_t pid) {
    if (r.state.load() != app_state::starting || r.starter_pid.load() != pid) {
        return false;
    }
    r.state.store(app_state::cold);
    return true;
}

std::size_t claim_worker_slot(worker_slot_table& t, std::int64_t pid, std::uint64_t config,
                              process_alive_fn alive, bool& reclaimed) {
    reclaimed = false;
    std::size_t gone = 0;
    std::size_t slot = 0;
    for (std::size_t i = 1; i < worker_slots && slot == 0; ++i) {
        std::int64_t owner = t.pid[i].load();
        if (owner == 0 || owner == pid) {
            // the same pid as a slot's owner: that owner died and its pid was reused for us
            reclaimed = owner == pid;
            slot = i;
        } else if (gone == 0 && !alive(owner)) {
            gone = i;
        }
    }
    if (slot == 0 && gone != 0) {
        slot = gone;
        reclaimed = true;
    }
    if (slot != 0) {
        t.pid[slot].store(pid);
        t.config[slot].store(config);
        t.helper_connected[slot].store(0);
    } else if (std::uint64_t shared = t.shared_config.load(); shared == 0 || config < shared) {
        t.shared_config.store(config);
    }
    this_worker_slot = slot;
    return slot;
}

bool older_workers_alive(const worker_slot_table& t, std::uint64_t config,
                         process_alive_fn alive) {
    std::uint64_t shared = t.shared_config.load();
    if (shared != 0 && shared < config) {
        return true;
    }
    for (std::size_t i = 1; i < worker_slots; ++i) {
        std::int64_t owner = t.pid[i].load();
        if (owner != 0 && t.config[i].load() < config && alive(owner)) {
            return true;
        }
    }
    return false;
}

bool begin_orphan_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms, std::uint64_t stop_ms) {
    app_state s = r.state.load();
    if (s == app_state::cold || r.held.load() != 0) {
        return false;
    }
    bool settled = s == app_state::ready || s == app_state::frozen;
    if (!settled && now_ms < r.deadline_ms.load()) {
        return false; // a start or stop that may still report back
    }
    // Counted with the idle stops: the record is not shown any more anyway.
    return stop_unless_busy(r, pid, now_ms, stop_ms, r.counters.idle_stops);
}

std::uint64_t reap_dead_workers(worker_slot_table& t, process_alive_fn alive) {
    std::uint64_t dead = 0;
    for (std::size_t i = 1; i < worker_slots; ++i) {
        std::int64_t owner = t.pid[i].load();
        if (owner != 0 && !alive(owner)) {
            t.pid[i].store(0);
            t.helper_connected[i].store(0);
            dead |= std::uint64_t{1} << i;
        }
    }
    return dead;
}

void release_worker_slot(worker_slot_table& t, std::size_t slot) {
    if (slot != 0 && slot < worker_slots) {
        t.pid[slot].store(0);
        t.helper_connected[slot].store(0);
    }
}

std::uint64_t clear_worker_counts(app_record& r, std::size_t slot) {
    std::uint64_t n = std::uint64_t{r.in_flight.in_slot(slot)} + r.held.in_slot(slot);
    r.in_flight.clear(slot);
    r.held.clear(slot);
    return n;
}

void app_counters::observe_hold(std::uint64_t ms) {
    std::size_t bucket = 0;
    while (bucket < hold_bucket_ms.size() && ms > hold_bucket_ms[bucket]) {
        ++bucket;
    }
    bump(hold[bucket]);
    hold_sum_ms.fetch_add(ms, std::memory_order_relaxed);
}

} // namespace ondemand
