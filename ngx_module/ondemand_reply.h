// What a reply or push from helperd (READY, FAILED, STOPPED, FROZEN, DOWN) does to an app's
// shared record, and what the worker must do next: which requests to wake with which status,
// what to log, and the keep_warm and USE follow-ups. Also the worker's other decisions about
// what to tell helperd: whether a held request asks (START/WAIT) or needs the helper first,
// and what the resync after a (re)connect sends for each app. Free of nginx so that GoogleTest
// checks every case; the module does the waking, the logging and the sending.
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
    none,       // they stay held: the helper is going away, the resync asks again
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
    // helperd is shutting down (FAILED ... shutting-down): nothing changed, and the worker treats
    // it exactly like a lost connection (drops it, reconnects, resyncs); held requests stay held
    bool helper_gone = false;
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

// What a worker does for a held request's START or WAIT.
enum class ask_kind : std::uint8_t {
    need_helper, // not connected: nothing is sent; the helper is needed (reconnect now, and the
                 // ondemand_helper_timeout deadline runs); the resync asks once connected
    send,        // send the START or WAIT
    nothing,     // already asked for this generation on this connection
};

// What the worker last asked helperd about an app, on the current connection.
struct asked_state {
    bool asked = false;          // START or WAIT sent (reset when the connection is lost)
    std::uint64_t asked_gen = 0; // for this generation
};

// `start`: this worker owns the start (START is always sent, helperd coalesces); otherwise a
// WAIT, once per generation. The connection is checked first: what was asked on a connection
// that is gone counts for nothing, and a request held without a helper must arm the deadline.
ask_kind decide_ask(bool connected, bool start, const asked_state& asked, std::uint64_t gen);

// What the resync after a (re)connect sends or does for one app.
struct resync_plan {
    bool start = false;      // send START (not WAIT): nobody else would ask a restarted helperd
    bool stop = false;       // send STOP/FREEZE again: a stop this worker began
    bool wake = false;       // wake the held requests to re-evaluate against the shared state
    bool report_use = false; // send USE for a ready app (a restarted helperd has no leases)
};

struct resync_context {
    std::int64_t pid = 0;   // this worker
    std::uint64_t now_ms = 0;
    bool held_here = false; // this worker holds requests for the app
    bool keep_warm = false;
};

// A start this worker owns is asked again even without held requests here (a keep_warm start,
// or one whose requests landed on other workers), while its deadline has not passed (always
// for keep_warm); a start that others own is asked again by the workers holding requests for
// it. A stopping app's held requests keep waiting (their stop watch runs).
resync_plan plan_resync(const app_record& r, const resync_context& ctx);

} // namespace ondemand

#endif
