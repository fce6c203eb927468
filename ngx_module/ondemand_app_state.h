// The per-app state machine shared by all nginx workers, free of nginx so that GoogleTest
// can exercise it directly. The record lives in the module's shared memory zone.
//
// Locking rule: every transition below is called with the zone's mutex held, except
// warm_enter()/warm_leave(), which are lock-free (the hot path). See docs/lifecycle.md.
//
// Must not call: nginx, the network, or anything outside this state machine.
#ifndef ONDEMAND_APP_STATE_H
#define ONDEMAND_APP_STATE_H

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ondemand {

enum class app_state : std::uint32_t {
    cold = 0,     // not running (or not known to run): the next request starts it
    starting = 1, // one worker sent START for `gen` and owns the start until `deadline`
    ready = 2,    // requests are proxied straight to the app's socket
    stopping = 3, // STOP sent; arriving requests are held until STOPPED
    freezing = 4, // FREEZE sent; arriving requests are held until FROZEN
    frozen = 5,   // the unit's processes are frozen: the next request thaws it (START)
};

const char* app_state_name(app_state s);

// Worker processes that can each keep their own counts in a record: every worker of one nginx
// alive at once, including a reload's draining old workers. Slot 0 is shared by the processes
// that find no slot of their own (more than worker_slots - 1 alive): only their counts can
// outlive a crash.
inline constexpr std::size_t worker_slots = 32;

// This process's slot (claim_worker_slot()); 0 until it has one.
extern std::size_t this_worker_slot;

// A count of requests (in flight, held) kept per worker process: each worker changes only its
// own slot, readers add the slots up, and the slot of a worker that died (SIGKILL, a crash) is
// cleared by the survivors (clear_worker_counts()), so that its requests do not stay counted
// for good. Each slot is a sequentially consistent atomic, so warm_enter()'s reasoning holds
// slot by slot. Trivially destructible and address-free.
class per_worker_count {
  public:
    void fetch_add(std::uint32_t n) { slots_[this_worker_slot].fetch_add(n); }
    void fetch_sub(std::uint32_t n) { slots_[this_worker_slot].fetch_sub(n); }
    std::uint64_t load() const {
        std::uint64_t sum = 0;
        for (const auto& s : slots_) {
            sum += s.load();
        }
        return sum;
    }
    std::uint32_t in_slot(std::size_t slot) const { return slots_[slot].load(); }
    void clear(std::size_t slot) { slots_[slot].store(0); }

  private:
    std::array<std::atomic<std::uint32_t>, worker_slots> slots_{};
};

// How a request for an app ended, as $ondemand_status tells it and ondemand_metrics counts it.
enum class request_outcome : std::uint8_t {
    warm,        // proxied on the lock-free warm path
    cold,        // missed the warm path (held, or found the app just ready), then proxied
    queue_full,  // 503: the hold queue was full
    max_running, // 503: ondemand_max_running apps run and none is idle
    timeout,     // 504: start_timeout passed
    failed,      // the start failed (failed_status)
    unavailable, // 503: helperd unreachable (ondemand_helper_timeout) or shutting down
    abandoned,   // 499: the client left while it was held
    not_woken,   // 503: the app was not running and ondemand_wake said not to start it
    wait_page,   // 503: a browser got the waiting page (ondemand_wait_page); the start goes on
    max_memory,  // 503: ondemand_max_memory would be exceeded and not enough apps are idle
};
inline constexpr std::size_t request_outcomes = 11;

// Upper bounds (ms) of the buckets of the hold-time histogram of cold requests; one more
// bucket (+Inf) follows them.
inline constexpr std::array<std::uint32_t, 12> hold_bucket_ms = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};

// An app's lifetime counters, for ondemand_metrics (docs/directives.md): monotonic, in the
// zone, so that they survive reloads with the record. Each is a relaxed atomic: they order
// nothing, and a reader adds them up without the zone's mutex (nginx's stub_status counts
// its requests the same way).
struct app_counters {
    std::atomic<std::uint64_t> starts{0};     // START sent
    std::atomic<std::uint64_t> failures{0};   // FAILED applied to a start
    std::atomic<std::uint64_t> idle_stops{0}; // stops begun for idleness (and frozen_timeout)
    std::atomic<std::uint64_t> evictions{0};  // stops begun to make room (max_running/memory)
    std::atomic<std::uint64_t> freezes{0};    // freezes begun
    std::array<std::atomic<std::uint64_t>, request_outcomes> requests{};
    // Hold time of the cold requests that were proxied: per bucket (not cumulative), the
    // last one +Inf; and their sum.
    std::array<std::atomic<std::uint64_t>, hold_bucket_ms.size() + 1> hold{};
    std::atomic<std::uint64_t> hold_sum_ms{0};

    void bump(std::atomic<std::uint64_t>& counter) {
        counter.fetch_add(1, std::memory_order_relaxed);
    }
    void count(request_outcome outcome) {
        bump(requests[static_cast<std::size_t>(outcome)]);
    }
    // A cold request held for `ms`, then proxied.
    void observe_hold(std::uint64_t ms);
};

// Trivially destructible and address-free: it lives in shared memory.
struct app_record {
    std::atomic<app_state> state{app_state::cold};
    std::atomic<std::uint64_t> gen{0};
    std::atomic<std::int64_t> starter_pid{0};
    std::atomic<std::uint64_t> deadline_ms{0};    // while starting/stopping
    per_worker_count in_flight;                   // requests being proxied now
    std::atomic<std::uint64_t> last_active_ms{0}; // end of the last request
    per_worker_count held;                        // requests held, all workers
    // ondemand_max_memory: the last figure helperd reported (MEMORY; 0: none yet), the
    // largest one ever reported, and when the last one came (ngx_current_msec). Relaxed:
    // figures, read under the zone mutex by the eviction.
    std::atomic<std::uint64_t> memory_bytes{0};
    std::atomic<std::uint64_t> memory_peak{0};
    std::atomic<std::uint64_t> memory_ms{0};
    app_counters counters;
};

// What a worker does with a request for an app that was not warm.
enum class request_action {
    proxy,         // the app is ready: pass the request on
    hold_and_start, // this worker now owns the start: hold the request and send START
    hold_and_wait, // another worker's start is in progress: hold and send WAIT
    hold,          // the app is stopping: hold until STOPPED, then start
};

// Lock-free warm path. Returns true and counts the request in flight when the app is
// ready. The increment comes before the re-check so that a concurrent begin_stop(),
// which changes the state before it reads in_flight, sees either the request or the
// state change (both are sequentially consistent atomics).
inline bool warm_enter(app_record& r) {
    if (r.state.load() != app_state::ready) {
        return false;
    }
    r.in_flight.fetch_add(1);
    if (r.state.load() == app_state::ready) {
        return true;
    }
    r.in_flight.fetch_sub(1);
    return false;
}

// The end of a proxied request.
inline void warm_leave(app_record& r, std::uint64_t now_ms) {
    r.last_active_ms.store(now_ms);
    r.in_flight.fetch_sub(1);
}

// Decides, under the zone mutex, what to do with a request that missed the warm path.
// `start_timeout_ms` bounds the start this worker may take over.
request_action on_request(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                          std::uint64_t start_timeout_ms);

// Applies READY for `gen`; returns true when the app is now ready for that generation.
bool on_ready(app_record& r, std::uint64_t gen, std::uint64_t now_ms);

// Applies FAILED for `gen`: the start is over and the app is cold again. Returns true
// when it applied (a stale generation is ignored).
bool on_failed(app_record& r, std::uint64_t gen);

// The idle check, under the zone mutex: moves a ready app that has nothing in flight and
// has been idle for `idle_timeout_ms` (0: never) to stopping. The state changes before
// in_flight is read, the mirror image of warm_enter(), so a request that slipped in is seen
// and the stop is called off. Returns true when the caller must send STOP.
bool begin_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                std::uint64_t idle_timeout_ms, std::uint64_t stop_timeout_ms);

// Lock-free pre-check for the idle scan: could begin_stop() succeed now?
inline bool looks_idle(const app_record& r, std::uint64_t now_ms, std::uint64_t idle_timeout_ms) {
    if (idle_timeout_ms == 0 || r.state.load() != app_state::ready || r.in_flight.load() != 0) {
        return false;
    }
    std::uint64_t last = r.last_active_ms.load();
    // Workers' clocks are cached separately: `last` may be a little ahead of `now_ms`.
    return now_ms >= last && now_ms - last >= idle_timeout_ms;
}

// Eviction to make room under a cap on running apps, under the zone mutex: stops a ready
// app with nothing in flight or held, however recently used. Returns true when the caller
// must send STOP.
bool begin_eviction(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                    std::uint64_t stop_timeout_ms);

// Could begin_eviction() succeed? (Lock-free, for choosing a victim.)
inline bool evictable(const app_record& r) {
    app_state s = r.state.load();
    return (s == app_state::ready || s == app_state::frozen) && r.in_flight.load() == 0 &&
           r.held.load() == 0;
}

// Freeze instead of stop: like begin_stop(), but the app goes to freezing. Returns true when
// the caller must send FREEZE.
bool begin_freeze(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                  std::uint64_t idle_timeout_ms, std::uint64_t freeze_timeout_ms);

// Applies FROZEN for `gen`. Returns true when it applied.
bool on_frozen(app_record& r, std::uint64_t gen);

// A freeze that failed: the app still runs, so it is ready again. Returns true when it applied.
bool on_freeze_failed(app_record& r, std::uint64_t gen);

// helperd refused a stop or freeze because another nginx uses the app: it stays ready (the
// idle scan tries again later). Returns true when it applied.
bool on_stop_refused(app_record& r, std::uint64_t gen);

// The lease a worker reports to helperd (USE) for a ready app: how much longer this nginx
// counts as using it: its idle timeout from the end of the last request, or the whole idle
// timeout while a request is in flight. 0: nothing to report (idle already).
std::uint64_t use_lease(const app_record& r, std::uint64_t now_ms, std::uint64_t idle_timeout_ms);

// A frozen app idle for `frozen_timeout_ms` (0: never) since its last request is stopped.
// Returns true when the caller must send STOP.
bool begin_frozen_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms,
                       std::uint64_t frozen_timeout_ms, std::uint64_t stop_timeout_ms);

// Does the app take a running slot (started, running or still stopping)?
inline bool running(const app_record& r) { return r.state.load() != app_state::cold; }

// Applies STOPPED (or the end of a failed stop) for `gen`: the app is cold. Returns true
// when it applied.
bool on_stopped(app_record& r, std::uint64_t gen);

// The app went away (DOWN from helperd, or a warm request could not connect): a ready or
// frozen app is cold, so that the next request starts it. A start in progress is left alone:
// its READY or FAILED tells. Returns true when it applied.
bool on_down(app_record& r);

// A start this worker owns cannot go on (its helper stayed unreachable): cold, so that the
// next request tries again. Returns true when it applied.
bool abandon_start(app_record& r, std::int64_t pid);

// Which worker process owns which slot of the per_worker_count records, and which
// configuration (generation, counted by the zone at each load) it runs; it lives in the zone.
struct worker_slot_table {
    std::array<std::atomic<std::int64_t>, worker_slots> pid{}; // 0: free; slot 0 is never owned
    std::array<std::atomic<std::uint64_t>, worker_slots> config{};
    // Whether the slot's worker has its helperd connection now (for ondemand_metrics).
    std::array<std::atomic<std::uint8_t>, worker_slots> helper_connected{};
    // The oldest configuration that ever had to share slot 0 (0: none): such workers cannot be
    // told apart, so records they might use are kept for good.
    std::atomic<std::uint64_t> shared_config{0};
};

// Tells whether a process still exists (the caller's kill(pid, 0)).
using process_alive_fn = bool (*)(std::int64_t pid);

// Under the zone mutex: gives `pid` a slot of its own, a free one or one whose owner is gone
// (its counts must then be cleared with clear_worker_counts()); 0 when every slot is taken by a
// live process. Sets this_worker_slot.
std::size_t claim_worker_slot(worker_slot_table& t, std::int64_t pid, std::uint64_t config,
                              process_alive_fn alive, bool& reclaimed);

// Could a live worker still run a configuration older than `config` (and so still use a record
// that `config` no longer names)? Under the zone mutex.
bool older_workers_alive(const worker_slot_table& t, std::uint64_t config,
                         process_alive_fn alive);

// A record of an app that no configuration names any more, under the zone mutex: true when it
// has nothing in flight or held and runs (or may run: a start or stop that never reported back
// by its deadline), so the caller must send STOP; it is then stopping until `now + stop_ms`.
bool begin_orphan_stop(app_record& r, std::int64_t pid, std::uint64_t now_ms, std::uint64_t stop_ms);

// Can such a record be freed: nothing in flight or held, and cold, or stopping (its STOP is
// with helperd, which stops the unit without the record)?
inline bool orphan_freeable(const app_record& r) {
    app_state s = r.state.load();
    return (s == app_state::cold || s == app_state::stopping) && r.in_flight.load() == 0 &&
           r.held.load() == 0;
}

// Under the zone mutex: frees the slots of processes that are gone and returns them as a bit
// mask (bit i: slot i), for the caller to clear their counts in every record.
std::uint64_t reap_dead_workers(worker_slot_table& t, process_alive_fn alive);

// A worker that exits gives its slot back (its counts are cleared too: nothing of it is left).
void release_worker_slot(worker_slot_table& t, std::size_t slot);

// Clears the counts that the worker of `slot` left in `r`. Returns how many requests they were.
std::uint64_t clear_worker_counts(app_record& r, std::size_t slot);

} // namespace ondemand

#endif
