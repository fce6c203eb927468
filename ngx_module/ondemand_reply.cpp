// Applying a helperd reply to an app's shared record (see ondemand_reply.h).
//
// Must not call: nginx, the network, or anything but ondemand_app_state's transitions.
#include "ondemand_reply.h"

namespace ondemand {

namespace {

// FAILED: for a stop or freeze this worker began, the end of that operation; otherwise the
// end of a start.
reply_effect apply_failed(app_record& r, const proto::message& msg, const reply_context& ctx) {
    reply_effect e;

    if (msg.reason == proto::failure::shutting_down) {
        // not an answer about the app: the helper goes away with what was asked of it
        e.helper_gone = true;
        e.wake = wake_kind::none;
        return e;
    }

    app_state state = r.state.load();
    bool stopping = (state == app_state::stopping);
    bool freezing = (state == app_state::freezing);
    bool same_gen = (msg.gen == r.gen.load());

    if ((stopping || freezing) && msg.reason == proto::failure::in_use) {
        // another nginx uses the app: it stays ready, the idle scan tries again later
        e.applied = on_stop_refused(r, msg.gen);
        e.event = stopping ? reply_event::stop_refused : reply_event::freeze_refused;
        return e;
    }

    if (stopping) {
        // the unit is in an unknown state: the next request starts it, which is a no-op
        // for a running unit
        e.applied = on_stopped(r, msg.gen);
        e.event = reply_event::stop_failed;
        return e;
    }

    if (freezing) {
        // a failed freeze leaves the app running
        e.applied = on_freeze_failed(r, msg.gen);
        e.event = reply_event::freeze_failed;
        return e;
    }

    e.applied = on_failed(r, msg.gen);

    if (!same_gen) {
        return e;
    }

    // helperd gives up at the same start deadline as the held requests: the same 504
    bool timeout = (msg.reason == proto::failure::timeout);

    if (e.applied || ctx.held_here) {
        e.event = timeout ? reply_event::start_timeout : reply_event::start_failed;
    }

    e.wake = timeout ? wake_kind::timeout : wake_kind::failed;
    e.retry_keep_warm = ctx.keep_warm && e.applied;
    return e;
}

} // namespace

bool is_app_reply(proto::verb kind) {
    return kind == proto::verb::ready || kind == proto::verb::failed ||
           kind == proto::verb::stopped || kind == proto::verb::down ||
           kind == proto::verb::frozen;
}

reply_effect apply_reply(app_record& r, const proto::message& msg, const reply_context& ctx) {
    reply_effect e;

    switch (msg.kind) {
    case proto::verb::ready:
        e.applied = on_ready(r, msg.gen, ctx.now_ms);
        // from now on another nginx sharing the helper must not stop it
        e.report_use = true;
        e.reset_warm_backoff = e.applied;
        return e;

    case proto::verb::failed:
        return apply_failed(r, msg, ctx);

    case proto::verb::frozen:
        e.applied = on_frozen(r, msg.gen);
        e.event = e.applied ? reply_event::frozen : reply_event::none;
        return e;

    case proto::verb::stopped:
        e.applied = on_stopped(r, msg.gen);
        e.event = e.applied ? reply_event::stopped : reply_event::none;
        return e;

    case proto::verb::down:
        e.applied = on_down(r);
        e.event = e.applied ? reply_event::went_down : reply_event::none;
        e.warm_up = e.applied && ctx.keep_warm;
        return e;

    default:
        // not a reply about an app (is_app_reply() is false): nothing changes; the held
        // requests, if any, look at the shared state again
        return e;
    }
}

ask_kind decide_ask(bool connected, bool start, const asked_state& asked, std::uint64_t gen) {
    if (!connected) {
        return ask_kind::need_helper;
    }
    if (!start && asked.asked && asked.asked_gen == gen) {
        return ask_kind::nothing;
    }
    return ask_kind::send;
}

resync_plan plan_resync(const app_record& r, const resync_context& ctx) {
    resync_plan p;
    bool mine = (r.starter_pid.load() == ctx.pid);

    switch (r.state.load()) {
    case app_state::starting:
        // helperd coalesces STARTs: safe if another worker sends one too
        p.start = ctx.held_here ||
                  (mine && (ctx.keep_warm || ctx.now_ms < r.deadline_ms.load()));
        break;

    case app_state::stopping:
    case app_state::freezing:
        p.stop = mine;
        break;

    case app_state::ready:
        p.report_use = true;
        p.wake = ctx.held_here;
        break;

    default: // cold, frozen: held requests start it (or thaw it) themselves
        p.wake = ctx.held_here;
        break;
    }

    return p;
}

} // namespace ondemand
