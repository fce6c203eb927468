
/*
 * ngx_http_ondemand_lifecycle: what this worker tells helperd and what it
 * does with the answers: START/WAIT for held requests, STOP/FREEZE from the
 * idle scan and evictions (chosen in ngx_http_ondemand_evict.cpp), USE
 * reports, the replies and pushes (applied by ondemand_reply; MEMORY by
 * evict), the resync after a reconnect (planned by ondemand_reply), and
 * keep_warm apps.
 *
 * Must not call: the handler or the upstream peer.  It reaches helperd
 * through the helper connection's functions, and held requests through the
 * queue's.
 */


#include "ngx_http_ondemand.h"
#include "ondemand_policy.h"
#include "ondemand_reply.h"


static void ngx_http_ondemand_on_message(const proto::message &m);
static void ngx_http_ondemand_on_connected(void);
static void ngx_http_ondemand_on_disconnected(ngx_uint_t lost);
static void ngx_http_ondemand_on_unreachable(void);
static void ngx_http_ondemand_apply(ngx_http_ondemand_app_t *app,
    const proto::message &m);
static void ngx_http_ondemand_log_reply(ngx_http_ondemand_app_t *app,
    const proto::message &m, ondemand::reply_event event);
static void ngx_http_ondemand_warm_up(void);
static void ngx_http_ondemand_warm_retry(ngx_event_t *ev);
static void ngx_http_ondemand_idle_scan(ngx_event_t *ev);
static void ngx_http_ondemand_report_use(ngx_http_ondemand_app_t *app);


ngx_http_ondemand_helper_handlers_t  ngx_http_ondemand_lifecycle = {
    ngx_http_ondemand_on_message,
    ngx_http_ondemand_on_connected,
    ngx_http_ondemand_on_disconnected,
    ngx_http_ondemand_on_unreachable
};


static ngx_event_t  ngx_http_ondemand_idle_ev;


void
ngx_http_ondemand_lifecycle_init(ngx_cycle_t *cycle,
    ngx_http_ondemand_main_conf_t *omcf)
{
    ngx_uint_t                i;
    ngx_http_ondemand_app_t  *app, **apps;

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];
        app->worker.warm_retry.handler = ngx_http_ondemand_warm_retry;
        app->worker.warm_retry.log = cycle->log;
        app->worker.warm_retry.data = app;
        app->worker.warm_retry.cancelable = 1;
        app->worker.warm_backoff = NGX_HTTP_ONDEMAND_WARM_RETRY_MIN;
    }

    /* the scan also does the zone's upkeep: it runs even if no app idles */

    ngx_http_ondemand_idle_ev.handler = ngx_http_ondemand_idle_scan;
    ngx_http_ondemand_idle_ev.log = cycle->log;
    ngx_http_ondemand_idle_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_ondemand_idle_ev, omcf->idle_interval
                                              ? omcf->idle_interval
                                              : NGX_HTTP_ONDEMAND_UPKEEP);
}


/* START (this worker owns the start) or WAIT (another worker does) */

void
ngx_http_ondemand_ask(ngx_http_ondemand_app_t *app,
    ondemand::request_action action)
{
    bool                   start;
    uint64_t               gen;
    proto::message         msg;
    ondemand::asked_state  asked;

    gen = app->record->gen.load();
    start = (action == ondemand::request_action::hold_and_start);
    asked.asked = app->worker.asked;
    asked.asked_gen = app->worker.asked_gen;

    switch (ondemand::decide_ask(ngx_http_ondemand_helper_connected(), start,
                                 asked, gen))
    {
    case ondemand::ask_kind::need_helper:
        /* the resync asks once connected */
        ngx_http_ondemand_helper_needed();
        return;

    case ondemand::ask_kind::nothing:
        return;

    default: /* send */
        break;
    }

    if (start) {
        msg.kind = proto::verb::start;
        msg.unit = ngx_http_ondemand_sv(&app->conf.unit);
        msg.ready = ngx_http_ondemand_sv(&app->conf.ready);
        msg.timeout_ms = app->conf.start_timeout;
        msg.socket = ngx_http_ondemand_sv(&app->conf.socket);

    } else {
        msg.kind = proto::verb::wait;
    }

    msg.app = ngx_http_ondemand_sv(&app->conf.name);
    msg.gen = gen;

    if (ngx_http_ondemand_helper_send(msg) == NGX_OK) {
        app->worker.asked = 1;
        app->worker.asked_gen = gen;
    }
}


/* STOP, or FREEZE for an app whose stop is a freeze */

void
ngx_http_ondemand_send_stop(ngx_http_ondemand_app_t *app)
{
    proto::message  msg;

    msg.kind = (app->record->state.load() == ondemand::app_state::freezing)
               ? proto::verb::freeze : proto::verb::stop;
    msg.app = ngx_http_ondemand_sv(&app->conf.name);
    msg.gen = app->record->gen.load();
    msg.unit = ngx_http_ondemand_sv(&app->conf.unit);

    /* without the helper, the resync sends it once connected */

    if (ngx_http_ondemand_helper_connected()) {
        (void) ngx_http_ondemand_helper_send(msg);
    }
}


/* the start timeout, from the held requests' timer or helperd's FAILED */

void
ngx_http_ondemand_log_not_ready(ngx_log_t *log, ngx_http_ondemand_app_t *app,
    const proto::message *m)
{
    std::string_view  code, text;

    if (m != NULL) {
        code = proto::failure_name(m->reason);
        text = m->text;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "ondemand: app \"%V\" not ready within %M ms%s%*s%s%*s",
                  &app->conf.name, app->conf.start_timeout,
                  m ? ": " : "", code.size(), code.data(),
                  text.empty() ? "" : ": ", text.size(), text.data());
}


/* a line from helperd */

static void
ngx_http_ondemand_on_message(const proto::message &m)
{
    ngx_http_ondemand_app_t  *app;

    if (m.kind == proto::verb::error) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "ondemand: helper refused a request: %*s",
                      m.text.size(), m.text.data());
        return;
    }

    if (m.kind == proto::verb::memory) {
        ngx_http_ondemand_memory_report(m);
        return;
    }

    if (!ondemand::is_app_reply(m.kind)) {
        return;
    }

    app = ngx_http_ondemand_find_app(ngx_http_ondemand_cycle_conf(),
                                     (u_char *) m.app.data(), m.app.size());
    if (app == NULL) {
        /* an app of another configuration (e.g. removed by a reload) */
        ngx_http_ondemand_upkeep_reply(m);
        return;
    }

    ngx_http_ondemand_apply(app, m);
}


/* READY, FAILED, STOPPED, FROZEN or DOWN for one of our apps */

static void
ngx_http_ondemand_apply(ngx_http_ondemand_app_t *app, const proto::message &m)
{
    ngx_log_t                *log;
    ondemand::reply_effect    e;
    ondemand::reply_context   rctx;

    log = ngx_cycle->log;

    rctx.now_ms = ngx_current_msec;
    rctx.keep_warm = app->conf.keep_warm;
    rctx.held_here = (app->worker.nwaiters != 0);

    ngx_http_ondemand_lock();
    e = ondemand::apply_reply(*app->record, m, rctx);
    ngx_http_ondemand_unlock();

    if (e.helper_gone) {
        /*
         * helperd is shutting down: ridden out exactly like a lost
         * connection; the held requests stay held, and the resync asks
         * again once it is back
         */
        ngx_http_ondemand_helper_drop("helper is shutting down");
        return;
    }

    ngx_http_ondemand_log_reply(app, m, e.event);

    if (e.retry_keep_warm && !app->worker.warm_retry.timer_set) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "ondemand: keep_warm app \"%V\" is started again "
                      "in %M ms", &app->conf.name, app->worker.warm_backoff);

        ngx_add_timer(&app->worker.warm_retry, app->worker.warm_backoff);

        app->worker.warm_backoff = ngx_min(app->worker.warm_backoff * 2,
                                           NGX_HTTP_ONDEMAND_WARM_RETRY_MAX);
    }

    if (e.warm_up) {
        ngx_http_ondemand_warm_up();
    }

    switch (e.wake) {

    case ondemand::wake_kind::timeout:
        ngx_http_ondemand_wake_all(app, NGX_HTTP_GATEWAY_TIME_OUT,
                                   NGX_HTTP_ONDEMAND_TIMEOUT);
        break;

    case ondemand::wake_kind::failed:
        ngx_http_ondemand_wake_all(app, app->conf.failed_status,
                                   NGX_HTTP_ONDEMAND_FAILED);
        break;

    case ondemand::wake_kind::none:
        break;

    default:
        /* ready, or a change the waiters re-evaluate against the zone */
        ngx_http_ondemand_wake_all(app, 0, NGX_HTTP_ONDEMAND_COLD);
        break;
    }

    if (e.report_use) {
        /* from now on another nginx sharing the helper must not stop it */
        ngx_http_ondemand_report_use(app);
    }

    if (e.reset_warm_backoff) {
        app->worker.warm_backoff = NGX_HTTP_ONDEMAND_WARM_RETRY_MIN;
    }
}


/* FAILED's code and details go to the error log as "code: details" */

static void
ngx_http_ondemand_log_reply(ngx_http_ondemand_app_t *app,
    const proto::message &m, ondemand::reply_event event)
{
    ngx_log_t         *log;
    ngx_str_t         *name;
    const char        *what, *sep;
    std::string_view   code;

    log = ngx_cycle->log;
    name = &app->conf.name;
    code = proto::failure_name(m.reason);
    sep = m.text.empty() ? "" : ": ";

    switch (event) {

    case ondemand::reply_event::stop_refused:
    case ondemand::reply_event::freeze_refused:
        what = (event == ondemand::reply_event::stop_refused)
               ? "stopped" : "frozen";
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ondemand: app \"%V\" not %s, another nginx uses it: "
                      "%*s%s%*s", name, what, code.size(), code.data(),
                      sep, m.text.size(), m.text.data());
        break;

    case ondemand::reply_event::stop_failed:
    case ondemand::reply_event::freeze_failed:
    case ondemand::reply_event::start_failed:
        what = (event == ondemand::reply_event::stop_failed) ? "stop"
               : (event == ondemand::reply_event::freeze_failed) ? "freeze"
               : "start";
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ondemand: app \"%V\" failed to %s: %*s%s%*s",
                      name, what, code.size(), code.data(),
                      sep, m.text.size(), m.text.data());
        break;

    case ondemand::reply_event::frozen:
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ondemand: app \"%V\" frozen", name);
        break;

    case ondemand::reply_event::start_timeout:
        ngx_http_ondemand_log_not_ready(log, app, &m);
        break;

    case ondemand::reply_event::stopped:
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ondemand: app \"%V\" stopped", name);
        break;

    case ondemand::reply_event::went_down:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "ondemand: app \"%V\" went down", name);
        break;

    default: /* none */
        break;
    }
}


/*
 * After (re)connecting, to a helperd that may know nothing of us: ask again
 * for apps held here and starts we own, resend our stops, report USE leases,
 * start cold keep_warm apps, and stop the apps a reload removed (upkeep).
 */

static void
ngx_http_ondemand_on_connected(void)
{
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ondemand::resync_plan           plan;
    ondemand::resync_context        rctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = ngx_http_ondemand_cycle_conf();
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    ngx_http_ondemand_memory_subscribe(omcf);

    rctx.pid = ngx_pid;
    rctx.now_ms = ngx_current_msec;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        rctx.held_here = (app->worker.nwaiters != 0);
        rctx.keep_warm = app->conf.keep_warm;

        plan = ondemand::plan_resync(*app->record, rctx);

        if (plan.start) {
            ngx_http_ondemand_ask(app,
                                  ondemand::request_action::hold_and_start);
        }

        if (plan.stop) {
            ngx_http_ondemand_send_stop(app);
        }

        if (plan.report_use) {
            ngx_http_ondemand_report_use(app);
        }

        if (plan.wake) {
            ngx_http_ondemand_wake_all(app, 0, NGX_HTTP_ONDEMAND_COLD);
        }

        if (!ngx_http_ondemand_helper_connected()) {
            return;
        }
    }

    ngx_http_ondemand_warm_up();
    ngx_http_ondemand_upkeep();
}


/*
 * The connection was lost (what was asked on it is lost too, and so are
 * the USE leases if helperd restarted), or a connect failed: requests held
 * here fail if it stays so for ondemand_helper_timeout.
 */

static void
ngx_http_ondemand_on_disconnected(ngx_uint_t lost)
{
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (lost) {
        omcf = ngx_http_ondemand_cycle_conf();
        apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

        for (i = 0; i < omcf->apps.nelts; i++) {
            app = apps[i];
            app->worker.asked = 0;
            app->worker.reported_active = NGX_HTTP_ONDEMAND_USE_RESEND;
        }
    }

    if (!ngx_queue_empty(ngx_http_ondemand_busy_apps())) {
        ngx_http_ondemand_helper_arm_deadline();
    }
}


/* the helper stayed unreachable for ondemand_helper_timeout */

static void
ngx_http_ondemand_on_unreachable(void)
{
    ngx_queue_t                    *q, *busy;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = ngx_http_ondemand_cycle_conf();
    busy = ngx_http_ondemand_busy_apps();

    while (!ngx_queue_empty(busy)) {
        q = ngx_queue_head(busy);
        app = ngx_queue_data(q, ngx_http_ondemand_app_t, worker.busy_link);

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "ondemand: helper \"%V\" unreachable for %M ms, "
                      "failing %ui held request(s) for app \"%V\"",
                      &omcf->helper->name, omcf->helper_timeout,
                      app->worker.nwaiters, &app->conf.name);

        /* a start this worker owns cannot proceed: let the next one retry */

        ngx_http_ondemand_lock();
        (void) ondemand::abandon_start(*app->record, ngx_pid);
        ngx_http_ondemand_unlock();

        ngx_http_ondemand_wake_all(app, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   NGX_HTTP_ONDEMAND_UNAVAILABLE);
    }
}


/* keep_warm apps: started when nginx starts, and again whenever they go down */

static void
ngx_http_ondemand_warm_up(void)
{
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_main_conf_t  *omcf;
    ondemand::request_action        action;

    omcf = ngx_http_ondemand_cycle_conf();
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        if (!app->conf.keep_warm
            || app->record->state.load() != ondemand::app_state::cold)
        {
            continue;
        }

        ngx_http_ondemand_lock();

        action = ondemand::request_action::hold;

        if (app->record->state.load() == ondemand::app_state::cold) {
            action = ondemand::on_request(*app->record, ngx_pid,
                                          ngx_current_msec,
                                          app->conf.start_timeout);
        }

        ngx_http_ondemand_unlock();

        if (action == ondemand::request_action::hold_and_start) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "ondemand: starting keep_warm app \"%V\"",
                          &app->conf.name);

            ngx_http_ondemand_ask(app, action);
        }
    }
}


/*
 * A keep_warm app whose start failed is started again by the worker that
 * learned of the failure, with a backoff (1 s doubling to 60 s, reset once
 * it is ready): nobody else would start it before its first request.
 */

static void
ngx_http_ondemand_warm_retry(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* without the helper, the reconnect's resync warms the app up */

    if (ngx_http_ondemand_helper_connected()) {
        ngx_http_ondemand_warm_up();
    }
}


/* the idle scan: every worker runs it; the zone mutex elects one stopper */

static void
ngx_http_ondemand_idle_scan(ngx_event_t *ev)
{
    bool                            stop;
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    omcf = ngx_http_ondemand_cycle_conf();
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    ngx_http_ondemand_upkeep();

    /* a stop needs the helper: without it, apps stay up rather than half-stopped */

    for (i = 0;
         ngx_http_ondemand_helper_connected() && i < omcf->apps.nelts;
         i++)
    {
        app = apps[i];

        ngx_http_ondemand_report_use(app);

        if (app->record->state.load() == ondemand::app_state::frozen) {
            ngx_http_ondemand_lock();
            stop = ondemand::begin_frozen_stop(*app->record, ngx_pid,
                                               ngx_current_msec,
                                               app->conf.frozen_timeout,
                                               app->conf.stop_timeout);
            ngx_http_ondemand_unlock();

            if (stop) {
                ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                              "ondemand: app \"%V\" frozen for %M ms, "
                              "stopping", &app->conf.name,
                              app->conf.frozen_timeout);

                ngx_http_ondemand_send_stop(app);
            }

            continue;
        }

        if (!ondemand::looks_idle(*app->record, ngx_current_msec,
                                  app->conf.idle_timeout))
        {
            continue;
        }

        ngx_http_ondemand_lock();

        if (app->conf.freeze) {
            stop = ondemand::begin_freeze(*app->record, ngx_pid,
                                          ngx_current_msec,
                                          app->conf.idle_timeout,
                                          app->conf.stop_timeout);
        } else {
            stop = ondemand::begin_stop(*app->record, ngx_pid,
                                        ngx_current_msec,
                                        app->conf.idle_timeout,
                                        app->conf.stop_timeout);
        }

        ngx_http_ondemand_unlock();

        if (!stop) {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "ondemand: app \"%V\" idle for %M ms, %s",
                      &app->conf.name, app->conf.idle_timeout,
                      app->conf.freeze ? "freezing" : "stopping");

        ngx_http_ondemand_send_stop(app);
    }

    ngx_add_timer(ev, omcf->idle_interval ? omcf->idle_interval
                                          : NGX_HTTP_ONDEMAND_UPKEEP);
}


/*
 * USE: tells helperd how much longer this nginx uses a ready app, so that
 * another nginx sharing the helper cannot stop it under our requests.  Sent
 * when there was a request since the last report, or while one is in flight.
 */

static void
ngx_http_ondemand_report_use(ngx_http_ondemand_app_t *app)
{
    uint64_t        last, lease;
    proto::message  msg;

    if (app->record->state.load() != ondemand::app_state::ready) {
        return;
    }

    last = app->record->last_active_ms.load();

    if (last == app->worker.reported_active
        && app->record->in_flight.load() == 0)
    {
        return;
    }

    lease = ondemand::use_lease(*app->record, ngx_current_msec,
                                app->conf.idle_timeout);
    if (lease == 0) {
        return;
    }

    msg.kind = proto::verb::use;
    msg.app = ngx_http_ondemand_sv(&app->conf.name);
    msg.gen = app->record->gen.load();
    msg.lease_ms = lease;

    if (ngx_http_ondemand_helper_send(msg) == NGX_OK) {
        app->worker.reported_active = last;
    }
}
