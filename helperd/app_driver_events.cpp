// app_driver, continued (see app_driver.h): what systemd and the bus report on their own (a
// unit's ActiveState, the bus lost), WAITs for apps nobody starts, and shutdown. Split from
// app_driver.cpp, which holds requests, starts, stops and freezes.
#include "app_driver.h"

#include "log.h"
#include "message_ids.h"

#include <fmt/format.h>

#include <algorithm>

namespace ondemand::helperd {

// ---- unit state -------------------------------------------------------------------------------

void app_driver::on_active_state(std::string_view path, std::string_view state) {
    auto it = units_by_path_.find(std::string(path));
    if (it == units_by_path_.end()) {
        return;
    }
    std::vector<std::string> names = it->second;
    for (const std::string& name : names) {
        app_runtime& a = app(name);
        if (!state.empty()) {
            active_state_changed(a, state);
            continue;
        }
        // Only invalidated: read it, and apply it unless another attempt began meanwhile
        // (whatever its phase: a ready app going down is what this is for).
        std::uint64_t attempt = a.core.attempt();
        units_.read_unit_state(
            a.core.unit(), guard_.wrap([this, name, self = &a, attempt](const unit_state& st,
                                                                        const std::string& error) {
                auto found = apps_.find(name);
                if (error.empty() && found != apps_.end() && found->second.get() == self &&
                    self->core.attempt() == attempt) {
                    active_state_changed(*self, st.active_state);
                }
            }));
    }
}

void app_driver::active_state_changed(app_runtime& a, std::string_view state) {
    bool running = state == "active" || state == "reloading";
    switch (a.core.phase()) {
    case app_phase::ready:
    case app_phase::frozen:
        if (!running && a.core.went_down()) {
            a.events.record(app_event_kind::down, std::chrono::system_clock::now());
            log({a.core.name(), a.core.unit(), message_id::down}, log_level::warning,
                "app {} down: unit {} is {}", a.core.name(), a.core.unit(), state);
            replies_.broadcast(proto::verb::down, a.core.name(), {});
        }
        break;
    case app_phase::starting:
        if (a.job_done && (state == "failed" || state == "inactive" || state == "deactivating")) {
            explain_failure(a, a.core.attempt(), fmt::format("unit {} before ready", state));
        }
        break;
    default:
        break;
    }
}

// ---- WAITs without a start --------------------------------------------------------------------

void app_driver::arm_pending_sweep(steady_time when) {
    if (pending_expiry_ && *pending_expiry_ <= when) {
        return;
    }
    pending_expiry_ = when;
    pending_timer_.expires_at(when);
    pending_timer_.async_wait(guard_.wrap([this](boost::system::error_code ec) {
        if (!ec) {
            pending_expiry_.reset();
            sweep_pending();
        }
    }));
}

void app_driver::sweep_pending() {
    steady_time now = std::chrono::steady_clock::now();
    std::optional<steady_time> next;
    for (auto& [name, a] : apps_) {
        std::vector<waiter> expired = a->core.expire_pending(now);
        if (!expired.empty()) {
            log({name, {}}, log_level::warning, "app {}: {} WAIT(s) saw no START within {} s", name,
                expired.size(), app_core::pending_wait_limit.count());
            replies_.answer_failed(expired, name, {proto::failure::no_start_pending, {}});
        }
        if (auto d = a->core.next_pending_deadline(); d && (!next || *d < *next)) {
            next = d;
        }
    }
    if (next) {
        arm_pending_sweep(*next);
    }
}

// ---- shutdown and bus loss --------------------------------------------------------------------

void app_driver::abandon_starts(const failure_reason& why) {
    for (auto& [name, a] : apps_) {
        end_attempt(*a);
        std::vector<waiter> waiters = a->core.abandon_starts(why);
        replies_.answer_failed(waiters, name, why);
    }
    pending_timer_.cancel();
}

void app_driver::bus_lost(const std::string& why) {
    for (auto& [name, a] : apps_) {
        (void)name;
        if (a->core.phase() == app_phase::starting) {
            start_failed(*a, a->core.attempt(), {proto::failure::bus_lost, why});
        }
    }
}

} // namespace ondemand::helperd
