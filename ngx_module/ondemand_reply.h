// What a reply or push from helperd (READY, FAILED, STOPPED, FROZEN, DOWN) does to an app's
// shared record, and what the worker must do next: which requests to wake with which status,
// what to log, and the keep_warm and USE follow-ups. Free of nginx so that GoogleTest checks
// every case; the module does the waking, the logging and the sending.
//
// Must not call: nginx, the network, or anything but ondemand_app_state's transitions.
#ifndef ONDEMAND_REPLY_H
#define ONDEMAND_REPLY_H

#include <cstdint>

#include "ondemand_app_state.h"
#include "ondemand_protocol.h"

namespace ondemand {

// How this worker's held requests for the app are woken.
enum class wake_kind : std::uint8_t {
    reevaluate, // each runs the handler again against the shared state (ready: proxied)
    timeout,    // each gets 504: the start did not finish within start_timeout
    failed,     // each gets the app's failed_status (502 or 503)
};

// What the worker writes to its error log about the reply.
enum class reply_event : std::uint8_t {
    none,
    stop_refused,   // info: another nginx uses the app, it was not stopped
    freeze_refused, // info: another nginx uses the app, it was not frozen
    stop_failed,    // error: the stop failed
    freeze_failed,  // error: the freeze failed
    frozen,         // info
    start_timeout,  // error: "not ready within start_timeout ms"
    start_failed,   // error
    stopped,        // info
    went_down,      // warn
};

struct reply_effect {
    bool applied = false; // the record changed (a stale generation changes nothing)
    reply_event event = reply_event::none;
    wake_kind wake = wake_kind::reevaluate;
    bool retry_keep_warm = false;    // a keep_warm app's start failed: start it again later
    bool warm_up = false;            // a keep_warm app went down: start it again now
    bool report_use = false;         // the app is ready for this worker: send USE
    bool reset_warm_backoff = false; // a keep_warm app is ready: its retry backoff starts over
};

// The worker's own facts about the app that the decision needs.
struct reply_context {
    std::uint64_t now_ms = 0;
    bool keep_warm = false;
    bool held_here = false; // this worker holds requests for the app
};

// Is `kind` a reply or push about one app (READY, FAILED, STOPPED, FROZEN, DOWN)?
bool is_app_reply(proto::verb kind);

// Applies the reply `msg` (is_app_reply(msg.kind)) to `r`, under the zone mutex, and says
// what follows. A FAILED decides on msg.reason, never on its text.
reply_effect apply_reply(app_record& r, const proto::message& msg, const reply_context& ctx);

} // namespace ondemand

#endif
