// app_core: the decisions of one app's bookkeeping (see app_core.h). No I/O: it must not
// include any helperd header but app_core.h.
#include "app_core.h"

#include <algorithm>

namespace ondemand::helperd {

std::string_view phase_name(app_phase phase) {
    switch (phase) {
    case app_phase::unknown:
        return "unknown";
    case app_phase::starting:
        return "starting";
    case app_phase::ready:
        return "ready";
    case app_phase::stopping:
        return "stopping";
    case app_phase::stopped:
        return "stopped";
    case app_phase::failed:
        return "failed";
    case app_phase::freezing:
        return "freezing";
    case app_phase::frozen:
        return "frozen";
    }
    return "unknown";
}

void app_core::enter(app_phase phase) {
    if (phase != phase_) {
        phase_since_ = std::chrono::system_clock::now();
    }
    phase_ = phase;
}

void app_core::begin_attempt(app_phase phase) {
    ++attempt_;
    enter(phase);
}

// WAITs kept for a START that has now arrived join it.
void app_core::adopt_pending() {
    for (const pending_wait& p : pending_) {
        start_waiters_.push_back(p.w);
        start_gen_ = std::max(start_gen_, p.w.gen);
    }
    pending_.clear();
}

app_core::start_decision app_core::on_start(waiter w, start_params params) {
    start_decision decision = start_decision::joined;
    switch (phase_) {
    case app_phase::starting:
        break;
    case app_phase::stopping:
    case app_phase::freezing:
        // A stop or freeze runs: the start follows it (stop_finished, freeze_finished).
        if (!start_queued_) {
            start_queued_ = true;
            start_gen_ = 0;
            params_ = std::move(params);
        }
        decision = start_decision::after_stop;
        break;
    case app_phase::ready:
    case app_phase::frozen:
    case app_phase::unknown:
    case app_phase::stopped:
    case app_phase::failed:
        decision = phase_ == app_phase::ready    ? start_decision::check_active
                   : phase_ == app_phase::frozen ? start_decision::thaw_unit
                                                 : start_decision::start_unit;
        begin_attempt(app_phase::starting);
        start_gen_ = 0;
        unit_ = params.unit;
        params_ = std::move(params);
        break;
    }
    start_waiters_.push_back(w);
    start_gen_ = std::max(start_gen_, w.gen);
    adopt_pending();
    return decision;
}

app_core::wait_decision app_core::on_wait(waiter w, steady_time now) {
    switch (phase_) {
    case app_phase::starting:
        break;
    case app_phase::stopping:
    case app_phase::freezing:
        if (!start_queued_) {
            pending_.push_back({w, now + pending_wait_limit});
            return wait_decision::pending;
        }
        break;
    case app_phase::ready:
        return wait_decision::ready_now;
    case app_phase::failed:
        if (w.gen <= last_gen_) {
            return wait_decision::failed_now;
        }
        pending_.push_back({w, now + pending_wait_limit});
        return wait_decision::pending;
    case app_phase::unknown:
    case app_phase::stopped:
    case app_phase::frozen: // the START that thaws it is coming
        pending_.push_back({w, now + pending_wait_limit});
        return wait_decision::pending;
    }
    start_waiters_.push_back(w);
    start_gen_ = std::max(start_gen_, w.gen);
    return wait_decision::joined;
}

app_core::stop_decision app_core::on_stop(waiter w, std::string unit,
                                          std::vector<waiter>& canceled) {
    stop_decision decision = stop_decision::stop_unit;
    if (phase_ == app_phase::stopping) {
        // STOP, START, STOP: the second STOP cancels the start queued behind the first.
        if (start_queued_) {
            start_queued_ = false;
            canceled = std::move(start_waiters_);
            start_waiters_.clear();
        }
        decision = stop_decision::joined;
    } else {
        if (phase_ == app_phase::starting) {
            canceled = std::move(start_waiters_);
            start_waiters_.clear();
        } else if (phase_ == app_phase::freezing) {
            // The stop replaces the freeze: its waiters and a start queued behind it are off.
            canceled = std::move(stop_waiters_);
            stop_waiters_.clear();
            if (start_queued_) {
                start_queued_ = false;
                canceled.insert(canceled.end(), start_waiters_.begin(), start_waiters_.end());
                start_waiters_.clear();
            }
        }
        begin_attempt(app_phase::stopping);
        unit_ = std::move(unit);
    }
    stop_waiters_.push_back(w);
    return decision;
}

app_core::freeze_decision app_core::on_freeze(waiter w, std::string unit) {
    switch (phase_) {
    case app_phase::freezing:
        stop_waiters_.push_back(w);
        return freeze_decision::joined;
    case app_phase::starting:
    case app_phase::stopping:
        return freeze_decision::refused;
    case app_phase::ready:
    case app_phase::frozen:
    case app_phase::unknown:
    case app_phase::stopped:
    case app_phase::failed:
        break;
    }
    before_freeze_ = phase_;
    begin_attempt(app_phase::freezing);
    unit_ = std::move(unit);
    stop_waiters_.push_back(w);
    return freeze_decision::freeze_unit;
}

app_core::freeze_outcome app_core::freeze_finished(std::uint64_t attempt, bool frozen) {
    freeze_outcome out;
    if (attempt != attempt_ || phase_ != app_phase::freezing) {
        return out;
    }
    app_phase now = frozen ? app_phase::frozen : before_freeze_;
    enter(now);
    out.waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    if (start_queued_) {
        start_queued_ = false;
        begin_attempt(app_phase::starting);
        unit_ = params_.unit;
        out.start_next = now == app_phase::frozen  ? start_decision::thaw_unit
                         : now == app_phase::ready ? start_decision::check_active
                                                   : start_decision::start_unit;
    }
    return out;
}

std::vector<waiter> app_core::start_succeeded(std::uint64_t attempt) {
    if (attempt != attempt_ || phase_ != app_phase::starting) {
        return {};
    }
    enter(app_phase::ready);
    last_gen_ = std::max(last_gen_, start_gen_);
    last_failure_ = {};
    std::vector<waiter> answered = std::move(start_waiters_);
    start_waiters_.clear();
    return answered;
}

std::vector<waiter> app_core::start_failed(std::uint64_t attempt, failure_reason reason) {
    if (attempt != attempt_ || phase_ != app_phase::starting) {
        return {};
    }
    enter(app_phase::failed);
    last_gen_ = std::max(last_gen_, start_gen_);
    last_failure_ = std::move(reason);
    std::vector<waiter> answered = std::move(start_waiters_);
    start_waiters_.clear();
    return answered;
}

app_core::stop_outcome app_core::stop_finished(std::uint64_t attempt) {
    return end_stop(attempt, app_phase::stopped);
}

app_core::stop_outcome app_core::stop_abandoned(std::uint64_t attempt, bool unit_running) {
    return end_stop(attempt, unit_running ? app_phase::ready : app_phase::stopped);
}

// The stop attempt is over, the app now `to`: its waiters are answered, and a START that came
// meanwhile begins its attempt.
app_core::stop_outcome app_core::end_stop(std::uint64_t attempt, app_phase to) {
    stop_outcome out;
    if (attempt != attempt_ || phase_ != app_phase::stopping) {
        return out;
    }
    out.waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    enter(to);
    if (start_queued_) {
        start_queued_ = false;
        begin_attempt(app_phase::starting);
        unit_ = params_.unit;
        out.start_next = true;
    }
    return out;
}

bool app_core::holds_unit(std::string_view unit) const {
    switch (phase_) {
    case app_phase::unknown:
    case app_phase::stopped:
    case app_phase::failed:
        return false;
    case app_phase::starting:
    case app_phase::ready:
    case app_phase::frozen:
        return unit_ == unit;
    case app_phase::stopping:
    case app_phase::freezing:
        return unit_ == unit || (start_queued_ && params_.unit == unit);
    }
    return false;
}

bool app_core::went_down() {
    if (phase_ != app_phase::ready && phase_ != app_phase::frozen) {
        return false;
    }
    enter(app_phase::stopped);
    return true;
}

std::vector<waiter> app_core::expire_pending(steady_time now) {
    std::vector<waiter> expired;
    std::erase_if(pending_, [&](const pending_wait& p) {
        if (p.deadline <= now) {
            expired.push_back(p.w);
            return true;
        }
        return false;
    });
    return expired;
}

std::optional<steady_time> app_core::next_pending_deadline() const {
    std::optional<steady_time> next;
    for (const pending_wait& p : pending_) {
        if (!next || p.deadline < *next) {
            next = p.deadline;
        }
    }
    return next;
}

std::vector<waiter> app_core::abandon_starts(failure_reason reason) {
    std::vector<waiter> out = std::move(start_waiters_);
    start_waiters_.clear();
    for (const pending_wait& p : pending_) {
        out.push_back(p.w);
    }
    pending_.clear();
    start_queued_ = false;
    if (phase_ == app_phase::starting) {
        ++attempt_;
        enter(app_phase::failed);
        last_gen_ = std::max(last_gen_, start_gen_);
        last_failure_ = std::move(reason);
    }
    return out;
}

void app_core::forget_client(client_id client) {
    auto of_client = [client](const waiter& w) { return w.client == client; };
    std::erase_if(start_waiters_, of_client);
    std::erase_if(stop_waiters_, of_client);
    std::erase_if(pending_, [client](const pending_wait& p) { return p.w.client == client; });
}

void app_core::forget_owner(std::string_view owner) {
    std::erase_if(leases_, [owner](const use_lease& l) { return l.owner == owner; });
}

void app_core::on_use(std::string_view owner, steady_time now, std::chrono::milliseconds lease) {
    // Saturate: a lease beyond the codec's cap (or negative) must not overflow `now + lease`.
    lease = std::clamp(lease, std::chrono::milliseconds{0},
                       std::chrono::milliseconds{proto::max_lease_ms});
    std::erase_if(leases_, [now](const use_lease& l) { return l.until <= now; });
    auto it = std::find_if(leases_.begin(), leases_.end(),
                           [owner](const use_lease& l) { return l.owner == owner; });
    if (it == leases_.end()) {
        leases_.push_back({std::string(owner), now + lease});
    } else {
        it->until = std::max(it->until, now + lease);
    }
}

std::optional<std::chrono::milliseconds> app_core::used_elsewhere(std::string_view asker,
                                                                  steady_time now) const {
    // nginx computes a lease as its idle timeout minus the time since the last request, with
    // its own cached clock: a lease that ends within the slack is over.
    constexpr std::chrono::milliseconds slack{100};
    std::optional<std::chrono::milliseconds> longest;
    for (const use_lease& l : leases_) {
        if (l.owner == asker || l.until <= now + slack) {
            continue;
        }
        auto left = std::chrono::ceil<std::chrono::milliseconds>(l.until - now);
        if (!longest || left > *longest) {
            longest = left;
        }
    }
    return longest;
}

} // namespace ondemand::helperd
