// app_driver: drives the apps' units for the daemon. It owns every app (its app_core and what
// runs for it: the attempt's job, deadline and readiness probe), calls the unit_manager
// (StartUnit, StopUnit, FreezeUnit, ThawUnit, property reads), reacts to JobRemoved and
// ActiveState changes, and reports every outcome through a reply_sink.
//
// It knows no client connection and no socket: it must not include server.h or client.h, and
// it answers only through reply_sink. Requests reach it already checked (allowlist, leases).
#ifndef ONDEMAND_HELPERD_APP_DRIVER_H
#define ONDEMAND_HELPERD_APP_DRIVER_H

#include "app_core.h"
#include "app_events.h"
#include "guard.h"
#include "inotify_hub.h"
#include "ondemand_protocol.h"
#include "readiness.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ondemand::helperd {

// Where the driver's answers go (the server writes them to its clients).
class reply_sink {
  public:
    reply_sink() = default;
    reply_sink(const reply_sink&) = delete;
    reply_sink& operator=(const reply_sink&) = delete;
    virtual ~reply_sink() = default;

    // `verb app gen` (READY, STOPPED, FROZEN) to each waiter, with its own gen.
    virtual void answer(const std::vector<waiter>& waiters, proto::verb verb,
                        std::string_view app) = 0;
    // FAILED app gen code details, to each waiter.
    virtual void answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                               const failure_reason& why) = 0;
    // `verb app` (DOWN) to every client but those in `except`.
    virtual void broadcast(proto::verb verb, std::string_view app,
                           const std::vector<waiter>& except) = 0;
};

// One app as STATUS shows it.
struct app_status {
    std::string name;
    app_phase phase = app_phase::unknown;
    std::string unit;
    std::chrono::system_clock::time_point since{};
    std::chrono::system_clock::time_point last_request{};
    std::uint64_t starts = 0;
    std::uint64_t failures = 0;
    // The last failed start (kept after a later success), and the last few events.
    std::optional<failure_reason> last_failure;
    app_events events;
};

// STATUS' fields after `failures=` (docs/PROTOCOL.md): ` last_failure=CODE
// last_failure_detail=TEXT events=LIST`, each left out when there is nothing to say. TEXT is the
// detail percent-encoded (spaces are %20), cut at 256 bytes before encoding.
void append_status_details(std::string& attrs, const app_status& a);

class app_driver {
  public:
    // Installs itself as `units`' on_job_removed / on_active_state (until destroyed).
    app_driver(boost::asio::io_context& io, unit_manager& units, reply_sink& replies);
    app_driver(const app_driver&) = delete;
    app_driver& operator=(const app_driver&) = delete;
    ~app_driver();

    // START (the unit is allowed): starts, thaws, re-checks, joins or queues behind a stop.
    void start(const waiter& w, std::string_view app, start_params params);
    // WAIT: answered at once, joined, or kept until its START comes (60 s at most).
    void wait(const waiter& w, std::string_view app);
    // STOP (allowed, and not refused for a lease): cancels a start, stops the unit.
    void stop(const waiter& w, std::string_view app, std::string_view unit);
    // FREEZE (allowed, and not refused for a lease).
    void freeze(const waiter& w, std::string_view app, std::string_view unit);

    // The app other than `asker` that holds `unit` now (app_core::holds_unit): a START, STOP or
    // FREEZE of `unit` for `asker` is refused then (docs/helperd.md, "One unit, one app").
    std::optional<std::string> unit_holder(std::string_view unit, std::string_view asker) const;
    // How long a stop may run before it ends as failed (stop-failed) and the unit's state is
    // read to tell whether the app is ready or stopped (docs/helperd.md, "Stop deadline").
    void set_stop_timeout(std::chrono::milliseconds limit) { stop_timeout_ = limit; }
    static constexpr std::chrono::milliseconds default_stop_timeout{120000};

    // The app's bookkeeping, created on first use (leases: USE, and the in-use check).
    app_core& core(std::string_view app);
    // Whether an app record exists, and how many there are (resource_limits::max_apps).
    bool has(std::string_view app) const { return apps_.find(app) != apps_.end(); }
    std::size_t size() const { return apps_.size(); }
    // Drops every idle record: an app that is unknown, stopped or failed, with nobody waiting
    // and nothing running or queued for it (its counters and leases go with it). Returns how
    // many were dropped.
    std::size_t drop_idle();
    // A request (START, WAIT or USE) named the app (STATUS' `last`); no-op for an app not
    // known yet. STOP and FREEZE are not requests: an idle stop must not look like traffic.
    void touch(std::string_view app);
    // Apps with a known unit, in name order: at most `limit` of them, from the first whose
    // name sorts after `after` ("" : from the first).
    std::vector<app_status> status(std::string_view after, std::size_t limit) const;
    std::size_t count(app_phase phase) const;
    // The apps whose unit runs (ready, freezing or frozen), with their unit: what the memory
    // sampler measures.
    std::vector<std::pair<std::string, std::string>> running_units() const;

    // A client is gone: forget what it waits for, and the leases of `owners`.
    void forget_client(client_id client, const std::vector<std::string>& owners);
    // helperd stops: every running or queued start and every pending WAIT is answered FAILED.
    void abandon_starts(const failure_reason& why);
    // The bus is gone: every running start fails with bus-lost.
    void bus_lost(const std::string& why);

  private:
    struct app_runtime {
        app_runtime(std::string name, boost::asio::io_context& io)
            : core(std::move(name)), deadline(io) {}
        app_core core;
        std::string object_path;
        std::string job; // the job of the current attempt, until JobRemoved
        bool job_done = false;
        bool explaining = false; // reading the unit's state to explain a failure
        // The running stop is of an app the clients believe ready (or frozen): when it is done,
        // the clients that did not ask for it get DOWN.
        bool announce_stop = false;
        // For STATUS: the last request line about the app, StartUnit calls, failed starts.
        std::chrono::system_clock::time_point last_request{};
        std::uint64_t starts = 0;
        std::uint64_t failures = 0;
        std::optional<failure_reason> last_failure;
        app_events events;
        std::shared_ptr<readiness_probe> probe;
        boost::asio::steady_timer deadline; // of the start, or of the stop
        steady_time began{};
    };

    app_runtime& app(std::string_view name);
    bool current(const app_runtime& a, std::uint64_t attempt, app_phase phase) const;
    // `fn`, unless the driver is gone or `attempt` is no longer the current one in `phase`.
    template <class F>
    auto while_current(app_runtime& a, std::uint64_t attempt, app_phase phase, F fn);

    void track_unit(app_runtime& a);
    void end_attempt(app_runtime& a);
    // `how`: start_unit, check_active or thaw_unit.
    void begin_start(app_runtime& a, app_core::start_decision how);
    void call_start_unit(app_runtime& a, std::uint64_t attempt);
    void remember_job(app_runtime& a, const std::string& job);
    void start_job_finished(app_runtime& a, std::string_view result);
    void begin_readiness(app_runtime& a, std::uint64_t attempt);
    void explain_failure(app_runtime& a, std::uint64_t attempt, std::string prefix);
    void start_succeeded(app_runtime& a, std::uint64_t attempt);
    void start_failed(app_runtime& a, std::uint64_t attempt, failure_reason reason);
    void begin_stop(app_runtime& a);
    void stop_finished(app_runtime& a, std::uint64_t attempt, const std::string& error);
    // The stop deadline passed: read the unit's state, then stop_abandoned.
    void stop_timed_out(app_runtime& a, std::uint64_t attempt);
    void stop_abandoned(app_runtime& a, std::uint64_t attempt, bool unit_running,
                        const std::string& state);
    void begin_freeze(app_runtime& a);
    void freeze_finished(app_runtime& a, std::uint64_t attempt, const std::string& error);

    void on_job_removed(std::string_view job, std::string_view result);
    void on_active_state(std::string_view path, std::string_view state);
    void active_state_changed(app_runtime& a, std::string_view state);

    void arm_pending_sweep(steady_time when);
    void sweep_pending();

    boost::asio::io_context& io_;
    unit_manager& units_;
    reply_sink& replies_;
    // One inotify instance for every readiness probe (see inotify_hub.h).
    std::shared_ptr<inotify_hub> inotify_;
    std::map<std::string, std::unique_ptr<app_runtime>, std::less<>> apps_;
    std::unordered_map<std::string, std::string> jobs_; // job path -> app
    // JobRemoved of jobs not (yet) known: systemd could in principle signal a job's end before
    // its StartUnit/StopUnit reply is processed. A short FIFO of the latest ones.
    std::deque<std::pair<std::string, std::string>> early_jobs_;              // job path, result
    std::unordered_map<std::string, std::vector<std::string>> units_by_path_; // -> apps
    boost::asio::steady_timer pending_timer_;
    std::optional<steady_time> pending_expiry_;
    std::chrono::milliseconds stop_timeout_ = default_stop_timeout;
    callback_guard guard_;
};

// (Here, not in app_driver.cpp, which is over the project's 700-line cap already.)
inline std::vector<std::pair<std::string, std::string>> app_driver::running_units() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, a] : apps_) {
        app_phase p = a->core.phase();
        if (p == app_phase::ready || p == app_phase::freezing || p == app_phase::frozen) {
            out.emplace_back(name, a->core.unit());
        }
    }
    return out;
}

} // namespace ondemand::helperd

#endif
