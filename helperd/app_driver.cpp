// app_driver: the systemd side of helperd (see app_driver.h). Every asynchronous result is
// tagged with the attempt it belongs to and dropped when that attempt is no longer current.
// Must not include server.h or client.h: it answers through reply_sink only.
#include "app_driver.h"

#include "log.h"
#include "message_ids.h"

#include <fmt/format.h>

#include <algorithm>

namespace ondemand::helperd {

namespace asio = boost::asio;

namespace {

constexpr std::size_t early_jobs_kept = 256;
constexpr std::size_t max_reason_length = 1024;

// A reason must be one line of printable text for the wire.
std::string sanitize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        out.push_back(c >= ' ' && c < 0x7f ? c : ' ');
    }
    if (out.size() > max_reason_length) {
        out.resize(max_reason_length);
    }
    return out;
}

// The generation of the first waiter, for the log line of a unit call.
std::uint64_t first_gen(const std::vector<waiter>& waiters) {
    return waiters.empty() ? 0 : waiters.front().gen;
}

} // namespace

void append_status_details(std::string& attrs, const app_status& a) {
    if (a.last_failure) {
        attrs += fmt::format(" last_failure={}", proto::failure_name(a.last_failure->code));
        if (!a.last_failure->detail.empty()) {
            attrs += " last_failure_detail=";
            attrs += percent_encode(a.last_failure->detail, 256);
        }
    }
    if (std::string events = a.events.to_attr(); !events.empty()) {
        attrs += " events=";
        attrs += events;
    }
}

app_driver::app_driver(asio::io_context& io, unit_manager& units, reply_sink& replies)
    : io_(io), units_(units), replies_(replies), inotify_(inotify_hub::create(io)),
      pending_timer_(io) {
    units_.on_job_removed = [this](std::string_view job, std::string_view /*unit*/,
                                   std::string_view result) { on_job_removed(job, result); };
    units_.on_active_state = [this](std::string_view path, std::string_view state) {
        on_active_state(path, state);
    };
}

app_driver::~app_driver() {
    guard_.revoke();
    units_.on_job_removed = nullptr;
    units_.on_active_state = nullptr;
    for (auto& [name, a] : apps_) {
        (void)name;
        if (a->probe) {
            a->probe->stop();
        }
    }
}

template <class F>
auto app_driver::while_current(app_runtime& a, std::uint64_t attempt, app_phase phase, F fn) {
    // The record may be gone by then (drop_idle): look it up by name, never through `a`.
    return guard_.wrap([this, name = a.core.name(), self = &a, attempt, phase,
                        fn = std::move(fn)](auto&&... args) {
        auto it = apps_.find(name);
        if (it != apps_.end() && it->second.get() == self && current(*self, attempt, phase)) {
            fn(std::forward<decltype(args)>(args)...);
        }
    });
}

// ---- requests ---------------------------------------------------------------------------------

app_driver::app_runtime& app_driver::app(std::string_view name) {
    auto it = apps_.find(name);
    if (it == apps_.end()) {
        it = apps_.emplace(std::string(name), std::make_unique<app_runtime>(std::string(name), io_))
                 .first;
    }
    return *it->second;
}

app_core& app_driver::core(std::string_view name) {
    return app(name).core;
}

std::size_t app_driver::drop_idle() {
    std::size_t dropped = 0;
    for (auto it = apps_.begin(); it != apps_.end();) {
        const app_runtime& a = *it->second;
        app_phase phase = a.core.phase();
        bool idle = (phase == app_phase::unknown || phase == app_phase::stopped ||
                     phase == app_phase::failed) &&
                    a.core.start_waiters().empty() && a.core.stop_waiters().empty() &&
                    a.core.pending_waiters() == 0 && !a.core.start_queued() && a.job.empty() &&
                    !a.explaining && !a.probe;
        if (!idle) {
            ++it;
            continue;
        }
        if (!a.object_path.empty()) {
            if (auto by_path = units_by_path_.find(a.object_path);
                by_path != units_by_path_.end()) {
                std::erase(by_path->second, it->first);
                if (by_path->second.empty()) {
                    units_by_path_.erase(by_path);
                }
            }
        }
        it = apps_.erase(it);
        ++dropped;
    }
    return dropped;
}

void app_driver::touch(std::string_view name) {
    if (auto it = apps_.find(name); !name.empty() && it != apps_.end()) {
        it->second->last_request = std::chrono::system_clock::now();
    }
}

std::optional<std::string> app_driver::unit_holder(std::string_view unit,
                                                   std::string_view asker) const {
    // O(apps): a string compare per record, for START, STOP and FREEZE lines only.
    for (const auto& [name, a] : apps_) {
        if (name != asker && a->core.holds_unit(unit)) {
            return name;
        }
    }
    return std::nullopt;
}

std::vector<app_status> app_driver::status(std::string_view after, std::size_t limit) const {
    std::vector<app_status> out;
    for (auto it = after.empty() ? apps_.begin() : apps_.upper_bound(after);
         it != apps_.end() && out.size() < limit; ++it) {
        const auto& [name, a] = *it;
        if (a->core.phase() == app_phase::unknown || a->core.unit().empty()) {
            continue;
        }
        out.push_back({name, a->core.phase(), a->core.unit(), a->core.phase_since(),
                       a->last_request, a->starts, a->failures, a->last_failure, a->events});
    }
    return out;
}

std::size_t app_driver::count(app_phase phase) const {
    return static_cast<std::size_t>(
        std::count_if(apps_.begin(), apps_.end(),
                      [phase](const auto& e) { return e.second->core.phase() == phase; }));
}

void app_driver::forget_client(client_id client, const std::vector<std::string>& owners) {
    for (auto& [name, a] : apps_) {
        (void)name;
        a->core.forget_client(client);
        for (const std::string& owner : owners) {
            a->core.forget_owner(owner);
        }
    }
}

void app_driver::start(const waiter& w, std::string_view name, start_params params) {
    app_runtime& a = app(name);
    std::string unit = params.unit;
    app_core::start_decision d = a.core.on_start(w, std::move(params));
    switch (d) {
    case app_core::start_decision::start_unit:
    case app_core::start_decision::check_active:
    case app_core::start_decision::thaw_unit:
        begin_start(a, d);
        break;
    case app_core::start_decision::joined:
        log({name, unit}, log_level::debug, "START {} gen {} from client {} joins the start", name,
            w.gen, w.client);
        break;
    case app_core::start_decision::after_stop:
        log({name, unit}, log_level::info,
            "START {} gen {} from client {} waits for the stop to finish", name, w.gen, w.client);
        break;
    }
}

void app_driver::wait(const waiter& w, std::string_view name) {
    app_runtime& a = app(name);
    switch (a.core.on_wait(w, std::chrono::steady_clock::now())) {
    case app_core::wait_decision::joined:
        break;
    case app_core::wait_decision::ready_now:
        replies_.answer({w}, proto::verb::ready, name);
        break;
    case app_core::wait_decision::failed_now:
        replies_.answer_failed({w}, name, a.core.last_failure());
        break;
    case app_core::wait_decision::pending:
        if (auto next = a.core.next_pending_deadline()) {
            arm_pending_sweep(*next);
        }
        break;
    }
}

void app_driver::stop(const waiter& w, std::string_view name, std::string_view unit) {
    app_runtime& a = app(name);
    app_phase before = a.core.phase();
    std::vector<waiter> canceled;
    app_core::stop_decision d = a.core.on_stop(w, std::string(unit), canceled);
    replies_.answer_failed(canceled, name, {proto::failure::canceled, "by STOP"});
    if (d == app_core::stop_decision::stop_unit) {
        a.announce_stop = before == app_phase::ready || before == app_phase::frozen ||
                          before == app_phase::freezing;
        begin_stop(a);
    }
}

void app_driver::freeze(const waiter& w, std::string_view name, std::string_view unit) {
    app_runtime& a = app(name);
    switch (a.core.on_freeze(w, std::string(unit))) {
    case app_core::freeze_decision::freeze_unit:
        begin_freeze(a);
        break;
    case app_core::freeze_decision::joined:
        break;
    case app_core::freeze_decision::refused:
        replies_.answer_failed(
            {w}, name,
            {proto::failure::not_freezable, fmt::format("app is {}", phase_name(a.core.phase()))});
        break;
    }
}

// ---- attempts ---------------------------------------------------------------------------------

bool app_driver::current(const app_runtime& a, std::uint64_t attempt, app_phase phase) const {
    return a.core.attempt() == attempt && a.core.phase() == phase;
}

void app_driver::track_unit(app_runtime& a) {
    std::string path = unit_object_path(a.core.unit());
    if (path == a.object_path) {
        return;
    }
    if (!a.object_path.empty()) {
        auto& names = units_by_path_[a.object_path];
        std::erase(names, a.core.name());
        if (names.empty()) {
            units_by_path_.erase(a.object_path);
        }
    }
    a.object_path = path;
    units_by_path_[path].push_back(a.core.name());
}

// Drops what the previous attempt left running.
void app_driver::end_attempt(app_runtime& a) {
    if (a.probe) {
        a.probe->stop();
        a.probe.reset();
    }
    a.deadline.cancel();
    if (!a.job.empty()) {
        jobs_.erase(a.job);
        a.job.clear();
    }
    a.job_done = false;
    a.explaining = false;
}

// ---- starting ---------------------------------------------------------------------------------

void app_driver::begin_start(app_runtime& a, app_core::start_decision how) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    a.began = std::chrono::steady_clock::now();
    a.events.record(app_event_kind::start, std::chrono::system_clock::now());
    a.deadline.expires_after(a.core.params().timeout);
    a.deadline.async_wait(while_current(
        a, attempt, app_phase::starting, [this, &a, attempt](boost::system::error_code ec) {
            if (ec) {
                return;
            }
            std::string seen;
            if (!a.job_done) {
                seen = "the start job did not finish";
            } else if (a.probe) {
                seen = a.probe->last_observation();
            }
            start_failed(a, attempt, {proto::failure::timeout, seen});
        }));
    if (how == app_core::start_decision::thaw_unit) {
        log({a.core.name(), a.core.unit(), message_id::start}, log_level::info,
            "ThawUnit {} for app {}", a.core.unit(), a.core.name());
        units_.thaw_unit(a.core.unit(),
                         while_current(a, attempt, app_phase::starting,
                                       [this, &a, attempt](const std::string& error) {
                                           if (error.empty()) {
                                               a.job_done = true;
                                               start_succeeded(a, attempt);
                                               return;
                                           }
                                           // Not frozen any more (thawed or stopped by someone
                                           // else): start it normally.
                                           log({a.core.name(), a.core.unit()}, log_level::info,
                                               "ThawUnit {} failed: {}", a.core.unit(), error);
                                           call_start_unit(a, attempt);
                                       }));
        return;
    }
    if (how != app_core::start_decision::check_active) {
        call_start_unit(a, attempt);
        return;
    }
    // Believed ready: answer at once if the unit is still active, without a StartUnit.
    units_.read_unit_state(
        a.core.unit(),
        while_current(a, attempt, app_phase::starting,
                      [this, &a, attempt](const unit_state& st, const std::string& error) {
                          if (error.empty() && st.active_state == "active") {
                              a.job_done = true;
                              start_succeeded(a, attempt);
                              return;
                          }
                          call_start_unit(a, attempt);
                      }));
}

void app_driver::call_start_unit(app_runtime& a, std::uint64_t attempt) {
    log({a.core.name(), a.core.unit(), message_id::start}, log_level::info,
        "StartUnit {} for app {} (gen {})", a.core.unit(), a.core.name(),
        first_gen(a.core.start_waiters()));
    ++a.starts;
    units_.start_unit(
        a.core.unit(),
        while_current(a, attempt, app_phase::starting,
                      [this, &a, attempt](const std::string& job, const std::string& error) {
                          if (!error.empty()) {
                              start_failed(a, attempt,
                                           {proto::failure::systemd_refused,
                                            fmt::format("StartUnit: {}", error)});
                              return;
                          }
                          remember_job(a, job);
                      }));
}

void app_driver::remember_job(app_runtime& a, const std::string& job) {
    auto early = std::find_if(early_jobs_.begin(), early_jobs_.end(),
                              [&](const auto& e) { return e.first == job; });
    if (early != early_jobs_.end()) {
        std::string result = early->second;
        early_jobs_.erase(early);
        a.job.clear();
        if (a.core.phase() == app_phase::starting) {
            start_job_finished(a, result);
        } else {
            stop_finished(a, a.core.attempt(), {});
        }
        return;
    }
    a.job = job;
    jobs_[job] = a.core.name();
}

void app_driver::on_job_removed(std::string_view job, std::string_view result) {
    auto it = jobs_.find(std::string(job));
    if (it == jobs_.end()) {
        early_jobs_.emplace_back(job, result);
        if (early_jobs_.size() > early_jobs_kept) {
            early_jobs_.pop_front();
        }
        return;
    }
    std::string name = it->second;
    jobs_.erase(it);
    app_runtime& a = app(name);
    if (a.job != job) {
        return;
    }
    a.job.clear();
    if (a.core.phase() == app_phase::starting) {
        start_job_finished(a, result);
    } else if (a.core.phase() == app_phase::stopping) {
        if (result != "done") {
            log({a.core.name(), a.core.unit()}, log_level::warning,
                "stop job of {} for app {} ended with {}", a.core.unit(), a.core.name(), result);
        }
        stop_finished(a, a.core.attempt(), {});
    }
}

void app_driver::start_job_finished(app_runtime& a, std::string_view result) {
    std::uint64_t attempt = a.core.attempt();
    if (result != "done") {
        explain_failure(a, attempt, fmt::format("start job {}", result));
        return;
    }
    a.job_done = true;
    if (a.core.params().ready == "notify") {
        start_succeeded(a, attempt);
        return;
    }
    begin_readiness(a, attempt);
}

void app_driver::begin_readiness(app_runtime& a, std::uint64_t attempt) {
    const std::string& ready = a.core.params().ready;
    std::string http_path = ready.rfind("http:", 0) == 0 ? ready.substr(5) : std::string();
    a.probe = readiness_probe::create(io_, inotify_, a.core.params().socket, http_path,
                                      [this, &a, attempt] { start_succeeded(a, attempt); });
    a.probe->start();
    if (!current(a, attempt, app_phase::starting)) {
        return; // it was ready at once
    }
    // The unit may have died before its state changes reached us in order with the job's end:
    // read the state now (systemd answers after everything it did so far).
    units_.read_unit_state(
        a.core.unit(), while_current(a, attempt, app_phase::starting,
                                     [this, &a](const unit_state& st, const std::string& error) {
                                         if (error.empty()) {
                                             active_state_changed(a, st.active_state);
                                         }
                                     }));
}

void app_driver::explain_failure(app_runtime& a, std::uint64_t attempt, std::string prefix) {
    if (a.explaining) {
        return;
    }
    a.explaining = true;
    units_.read_unit_state(
        a.core.unit(),
        while_current(a, attempt, app_phase::starting,
                      [this, &a, attempt, prefix = std::move(prefix)](const unit_state& st,
                                                                      const std::string& error) {
                          start_failed(a, attempt,
                                       {proto::failure::unit_failed,
                                        error.empty()
                                            ? fmt::format("{}: {}", prefix, describe_unit_state(st))
                                            : prefix});
                      }));
}

void app_driver::start_succeeded(app_runtime& a, std::uint64_t attempt) {
    if (!current(a, attempt, app_phase::starting)) {
        return;
    }
    end_attempt(a);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - a.began)
                  .count();
    std::vector<waiter> waiters = a.core.start_succeeded(attempt);
    a.events.record(app_event_kind::ready, std::chrono::system_clock::now());
    log({a.core.name(), a.core.unit(), message_id::ready}, log_level::info,
        "app {} ready after {} ms (unit {}, {} waiters)", a.core.name(), ms, a.core.unit(),
        waiters.size());
    replies_.answer(waiters, proto::verb::ready, a.core.name());
}

void app_driver::start_failed(app_runtime& a, std::uint64_t attempt, failure_reason reason) {
    if (!current(a, attempt, app_phase::starting)) {
        return;
    }
    end_attempt(a);
    ++a.failures;
    reason.detail = sanitize(reason.detail);
    a.last_failure = reason;
    a.events.record(app_event_kind::failed, std::chrono::system_clock::now(), reason.code);
    log({a.core.name(), a.core.unit(), message_id::start_failed}, log_level::warning,
        "app {} start failed (unit {}): {} {}", a.core.name(), a.core.unit(),
        proto::failure_name(reason.code), reason.detail);
    std::vector<waiter> waiters = a.core.start_failed(attempt, reason);
    replies_.answer_failed(waiters, a.core.name(), reason);
}

// ---- stopping and freezing --------------------------------------------------------------------

void app_driver::begin_stop(app_runtime& a) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    a.events.record(app_event_kind::stop, std::chrono::system_clock::now());
    log({a.core.name(), a.core.unit(), message_id::stop}, log_level::info,
        "StopUnit {} for app {} (gen {})", a.core.unit(), a.core.name(),
        first_gen(a.core.stop_waiters()));
    // A stop job that never ends (systemd merged it into a job helperd does not know, or the
    // unit hangs longer than this) must not leave the app stopping for ever.
    a.deadline.expires_after(stop_timeout_);
    a.deadline.async_wait(while_current(a, attempt, app_phase::stopping,
                                        [this, &a, attempt](boost::system::error_code ec) {
                                            if (!ec) {
                                                stop_timed_out(a, attempt);
                                            }
                                        }));
    units_.stop_unit(
        a.core.unit(),
        while_current(a, attempt, app_phase::stopping,
                      [this, &a, attempt](const std::string& job, const std::string& error,
                                          bool no_such_unit) {
                          if (!error.empty()) {
                              // A unit that is not loaded is not running: that is
                              // stopped.
                              stop_finished(a, attempt, no_such_unit ? std::string() : error);
                              return;
                          }
                          remember_job(a, job);
                      }));
}

void app_driver::stop_finished(app_runtime& a, std::uint64_t attempt, const std::string& error) {
    if (!current(a, attempt, app_phase::stopping)) {
        return;
    }
    end_attempt(a);
    bool announce = a.announce_stop;
    a.announce_stop = false;
    app_core::stop_outcome out = a.core.stop_finished(attempt);
    a.events.record(error.empty() ? app_event_kind::stopped : app_event_kind::failed,
                    std::chrono::system_clock::now(), proto::failure::stop_failed);
    if (error.empty()) {
        log({a.core.name(), a.core.unit(), message_id::stopped}, log_level::info,
            "app {} stopped (unit {})", a.core.name(), a.core.unit());
        // The other clients (every other nginx worker, when ondemandctl stopped the app) still
        // believe it ready: tell them, before the stopper hears STOPPED. Not when a START came
        // meanwhile: the app is starting again, and its clients wait for that.
        if (announce && !out.start_next) {
            log({a.core.name(), a.core.unit()}, log_level::info,
                "app {} down: stopped by STOP, telling the other clients", a.core.name());
            replies_.broadcast(proto::verb::down, a.core.name(), out.waiters);
        }
        replies_.answer(out.waiters, proto::verb::stopped, a.core.name());
    } else {
        log({a.core.name(), a.core.unit()}, log_level::warning, "app {} {}", a.core.name(), error);
        replies_.answer_failed(out.waiters, a.core.name(),
                               {proto::failure::stop_failed, sanitize(error)});
    }
    if (out.start_next) {
        begin_start(a, app_core::start_decision::start_unit);
    }
}

void app_driver::stop_timed_out(app_runtime& a, std::uint64_t attempt) {
    log({a.core.name(), a.core.unit()}, log_level::warning,
        "app {}: the stop of {} did not finish within {} ms; reading the unit's state",
        a.core.name(), a.core.unit(), stop_timeout_.count());
    // The job stays known meanwhile: if it ends now, that is the stop's end after all.
    units_.read_unit_state(
        a.core.unit(),
        while_current(a, attempt, app_phase::stopping,
                      [this, &a, attempt](const unit_state& st, const std::string& error) {
                          bool running = error.empty() && (st.active_state == "active" ||
                                                           st.active_state == "reloading");
                          stop_abandoned(a, attempt, running,
                                         error.empty() ? st.active_state
                                                       : fmt::format("unknown: {}", error));
                      }));
}

void app_driver::stop_abandoned(app_runtime& a, std::uint64_t attempt, bool unit_running,
                                const std::string& state) {
    if (!current(a, attempt, app_phase::stopping)) {
        return;
    }
    end_attempt(a); // forgets the job: a late JobRemoved belongs to no attempt
    bool announce = a.announce_stop;
    a.announce_stop = false;
    app_core::stop_outcome out = a.core.stop_abandoned(attempt, unit_running);
    failure_reason why{proto::failure::stop_failed,
                       sanitize(fmt::format("timeout: the stop job did not finish within {} ms; "
                                            "unit {} is {}",
                                            stop_timeout_.count(), a.core.unit(), state))};
    log({a.core.name(), a.core.unit()}, log_level::warning, "app {} stop failed: {}; app is {}",
        a.core.name(), why.detail, phase_name(a.core.phase()));
    // The other clients believe the app ready: tell them when it is not running any more.
    if (announce && !unit_running && !out.start_next) {
        replies_.broadcast(proto::verb::down, a.core.name(), out.waiters);
    }
    replies_.answer_failed(out.waiters, a.core.name(), why);
    if (out.start_next) {
        begin_start(a, app_core::start_decision::start_unit);
    }
}

void app_driver::begin_freeze(app_runtime& a) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    log({a.core.name(), a.core.unit(), message_id::freeze}, log_level::info,
        "FreezeUnit {} for app {}", a.core.unit(), a.core.name());
    units_.freeze_unit(a.core.unit(), while_current(a, attempt, app_phase::freezing,
                                                    [this, &a, attempt](const std::string& error) {
                                                        freeze_finished(a, attempt, error);
                                                    }));
}

void app_driver::freeze_finished(app_runtime& a, std::uint64_t attempt, const std::string& error) {
    app_core::freeze_outcome out = a.core.freeze_finished(attempt, error.empty());
    a.events.record(error.empty() ? app_event_kind::freeze : app_event_kind::failed,
                    std::chrono::system_clock::now(), proto::failure::freeze_failed);
    if (error.empty()) {
        log({a.core.name(), a.core.unit()}, log_level::info, "app {} frozen (unit {})",
            a.core.name(), a.core.unit());
        replies_.answer(out.waiters, proto::verb::frozen, a.core.name());
    } else {
        log({a.core.name(), a.core.unit()}, log_level::warning, "app {} freeze failed: {}",
            a.core.name(), error);
        replies_.answer_failed(out.waiters, a.core.name(),
                               {proto::failure::freeze_failed, sanitize(error)});
    }
    if (out.start_next) {
        begin_start(a, *out.start_next);
    }
}

} // namespace ondemand::helperd
