// The bookkeeping of one app in helperd, free of I/O so that it can be unit-tested: its phase,
// who waits for what, which operation (attempt) is current. The daemon performs the actions this
// class decides on and reports their outcomes back, tagged with the attempt they belong to;
// outcomes of an attempt that is no longer current are ignored.
// Must not include any other helperd header nor do I/O: no sockets, timers, D-Bus or logging.
#ifndef ONDEMAND_HELPERD_APP_CORE_H
#define ONDEMAND_HELPERD_APP_CORE_H

#include "ondemand_protocol.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

using client_id = std::uint64_t;
using steady_time = std::chrono::steady_clock::time_point;

// A wire count of milliseconds as a duration, saturated at `cap` (the codec's cap for the
// field): never negative, never overflowing a time point computed from it.
inline std::chrono::milliseconds saturated_ms(std::uint64_t ms, std::uint64_t cap) {
    return std::chrono::milliseconds(
        static_cast<std::chrono::milliseconds::rep>(ms < cap ? ms : cap));
}

// A client waiting for an answer, with the generation it sent (echoed back to it).
struct waiter {
    client_id client = 0;
    std::uint64_t gen = 0;
    bool operator==(const waiter&) const = default;
};

struct start_params {
    std::string unit;
    std::string ready; // "connect", "notify" or "http:/path"
    std::chrono::milliseconds timeout{0};
    std::string socket;
};

// Why an attempt failed: the code clients decide on (FAILED's first field), and details for
// people.
struct failure_reason {
    proto::failure code = proto::failure::other;
    std::string detail;
    bool operator==(const failure_reason&) const = default;
};

enum class app_phase {
    unknown,  // only WAITs seen so far: no unit known
    starting, // a start attempt runs (StartUnit, readiness, or re-checking a ready app)
    ready,
    stopping, // a stop attempt runs; a START meanwhile is queued behind it
    stopped,  // stopped by STOP, or went down by itself
    failed,   // the last start attempt failed
    freezing, // a freeze attempt runs (FreezeUnit)
    frozen,   // the unit is frozen (cgroup freezer): a START thaws it
};

std::string_view phase_name(app_phase phase);

class app_core {
  public:
    // How long a WAIT for an app with no start in progress is kept for a START to arrive.
    static constexpr std::chrono::seconds pending_wait_limit{60};

    enum class start_decision {
        start_unit,   // a new attempt: call StartUnit
        check_active, // a new attempt for an app believed ready: verify it is still active
        thaw_unit,    // a new attempt for a frozen app: call ThawUnit
        joined,       // an attempt is running; the waiter gets its outcome
        after_stop,   // a stop runs; the start follows it (see stop_outcome::start_next)
    };
    enum class wait_decision {
        joined,     // a start runs or is queued: the waiter gets its outcome
        ready_now,  // answer READY at once
        failed_now, // the start for this generation already failed: FAILED last_failure()
        pending,    // no start yet: kept until one arrives or pending_wait_limit passes
    };
    enum class stop_decision {
        stop_unit, // a new attempt: call StopUnit
        joined,    // a stop runs; the waiter gets STOPPED with the others
    };
    enum class freeze_decision {
        freeze_unit, // a new attempt: call FreezeUnit
        joined,      // a freeze runs; the waiter gets its outcome with the others
        refused,     // starting or stopping: nothing to freeze (answer FAILED)
    };

    explicit app_core(std::string name) : name_(std::move(name)) {}

    const std::string& name() const { return name_; }
    app_phase phase() const { return phase_; }
    // When the app entered its current phase (for STATUS).
    std::chrono::system_clock::time_point phase_since() const { return phase_since_; }
    std::uint64_t attempt() const { return attempt_; }
    // The unit of the current or last operation ("" while unknown).
    const std::string& unit() const { return unit_; }
    // Parameters of the current (or queued, while stopping) start.
    const start_params& params() const { return params_; }
    const failure_reason& last_failure() const { return last_failure_; }
    const std::vector<waiter>& start_waiters() const { return start_waiters_; }
    // Waiters of the running stop or freeze.
    const std::vector<waiter>& stop_waiters() const { return stop_waiters_; }
    std::size_t pending_waiters() const { return pending_.size(); }
    bool start_queued() const { return start_queued_; }

    start_decision on_start(waiter w, start_params params);
    wait_decision on_wait(waiter w, steady_time now);
    // `canceled` receives the waiters of a start that this STOP cancels (answer them FAILED),
    // or of a freeze it replaces.
    stop_decision on_stop(waiter w, std::string unit, std::vector<waiter>& canceled);
    freeze_decision on_freeze(waiter w, std::string unit);

    // Outcomes of the current attempt. Each returns the waiters to answer; nothing when
    // `attempt` is stale or the phase does not match.
    std::vector<waiter> start_succeeded(std::uint64_t attempt);
    std::vector<waiter> start_failed(std::uint64_t attempt, failure_reason reason);
    struct stop_outcome {
        std::vector<waiter> waiters; // answer STOPPED (or the stop's failure)
        bool start_next = false;     // a START came meanwhile: a new attempt began, StartUnit
    };
    stop_outcome stop_finished(std::uint64_t attempt);
    // The stop did not finish in time (the stop deadline): the app is ready again when its
    // unit still runs (`unit_running`: active or reloading), stopped otherwise; never left
    // stopping. A START that came meanwhile begins its attempt, as after stop_finished.
    stop_outcome stop_abandoned(std::uint64_t attempt, bool unit_running);
    // The freeze ended: frozen when it worked; when it did not, back in the phase the freeze
    // began in (a failed FREEZE of a stopped app leaves it stopped, not ready).
    struct freeze_outcome {
        std::vector<waiter> waiters; // answer FROZEN (or the freeze's failure)
        // A START came meanwhile: a new attempt began, to be carried out like this decision
        // (thaw_unit when frozen, check_active when ready again, start_unit otherwise).
        std::optional<start_decision> start_next;
    };
    freeze_outcome freeze_finished(std::uint64_t attempt, bool frozen);

    // Whether the app holds its unit now: an operation runs on it or it is ready or frozen
    // (any phase but unknown, stopped and failed). `unit` is the unit it holds then, or the
    // one a START queued behind a stop or freeze is for. docs/helperd.md, "One unit, one app".
    bool holds_unit(std::string_view unit) const;

    // The unit left the active state while the app was ready or frozen and not being
    // stopped: the app is stopped now. Returns true when DOWN is to be pushed.
    bool went_down();

    // Waits whose limit passed by `now`, removed (answer FAILED no-start-pending).
    std::vector<waiter> expire_pending(steady_time now);
    std::optional<steady_time> next_pending_deadline() const;

    // helperd shuts down: every start waiter (of a running or queued start) and every pending
    // WAIT is removed and returned (answer them FAILED); a running start ends as failed.
    std::vector<waiter> abandon_starts(failure_reason reason);

    // A client disconnected: forget everything it waits for.
    void forget_client(client_id client);

    // USE: `owner` (an nginx instance, see lease_owner in server.h) counts as using the app
    // until now + lease (its idle timeout).
    void on_use(std::string_view owner, steady_time now, std::chrono::milliseconds lease);
    // How much longer an owner other than `asker` uses the app; nothing when none does.
    // A STOP or FREEZE (not forced) is refused meanwhile (docs/helperd.md, "Shared apps").
    std::optional<std::chrono::milliseconds> used_elsewhere(std::string_view asker,
                                                            steady_time now) const;
    // The owner's last connection is gone: its leases end.
    void forget_owner(std::string_view owner);

  private:
    struct pending_wait {
        waiter w;
        steady_time deadline;
    };

    void enter(app_phase phase);
    void begin_attempt(app_phase phase);
    void adopt_pending();
    stop_outcome end_stop(std::uint64_t attempt, app_phase to);

    std::string name_;
    app_phase phase_ = app_phase::unknown;
    std::chrono::system_clock::time_point phase_since_ = std::chrono::system_clock::now();
    std::uint64_t attempt_ = 0;
    std::string unit_;
    start_params params_;
    bool start_queued_ = false;
    std::uint64_t start_gen_ = 0; // highest generation that joined the current/queued start
    std::uint64_t last_gen_ = 0;  // highest generation a finished start answered
    failure_reason last_failure_;
    std::vector<waiter> start_waiters_;
    std::vector<waiter> stop_waiters_;
    // The phase a freeze attempt began in: a failed freeze returns to it.
    app_phase before_freeze_ = app_phase::ready;
    std::vector<pending_wait> pending_;
    struct use_lease {
        std::string owner;
        steady_time until;
    };
    std::vector<use_lease> leases_;
};

} // namespace ondemand::helperd

#endif
