
/*
 * ngx_http_ondemand_queue: this worker's held requests.  Each app keeps its
 * waiters; apps with waiters are on the busy list.  Releases go in paced
 * batches; while an app stops, the stop watch looks at its shared state.
 *
 * Must not call: the handler, lifecycle or the helper connection (it never
 * asks helperd anything), nor take the zone mutex.
 */


#include "ngx_http_ondemand.h"


static void ngx_http_ondemand_release_batch(ngx_event_t *ev);
static void ngx_http_ondemand_stop_watch_handler(ngx_event_t *ev);


/* apps with requests held in this worker */
static ngx_queue_t  ngx_http_ondemand_busy;


void
ngx_http_ondemand_queue_init(void)
{
    ngx_queue_init(&ngx_http_ondemand_busy);
}


ngx_queue_t *
ngx_http_ondemand_busy_apps(void)
{
    return &ngx_http_ondemand_busy;
}


/* the request is counted in the app's held requests (by the caller) */

void
ngx_http_ondemand_queue_add(ngx_http_ondemand_ctx_t *ctx)
{
    ngx_http_ondemand_app_t  *app;

    app = ctx->app;

    ngx_queue_insert_tail(&app->worker.waiters, &ctx->queue);
    ctx->queued = 1;

    if (app->worker.nwaiters++ == 0) {
        ngx_queue_insert_tail(&ngx_http_ondemand_busy,
                              &app->worker.busy_link);
    }
}


void
ngx_http_ondemand_unqueue(ngx_http_ondemand_ctx_t *ctx)
{
    ngx_http_ondemand_app_t  *app;

    if (!ctx->queued) {
        return;
    }

    app = ctx->app;

    ngx_queue_remove(&ctx->queue);
    ctx->queued = 0;
    app->record->held.fetch_sub(1);

    if (--app->worker.nwaiters == 0) {
        ngx_queue_remove(&app->worker.busy_link);
    }
}


/*
 * Releases (status 0: re-evaluate) or fails the requests held here.  A
 * release goes in batches a millisecond apart, so that a herd does not
 * overflow the app's listen backlog: Linux answers EAGAIN to a connect() on
 * a full unix socket backlog, which would be a 502.
 */

void
ngx_http_ondemand_wake_all(ngx_http_ondemand_app_t *app, ngx_int_t status,
    ngx_http_ondemand_outcome_e outcome)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_http_ondemand_ctx_t  *ctx;

    if (status == 0 && app->worker.release_ev.timer_set) {
        /* a release is under way: its next batch re-evaluates */
        return;
    }

    for (n = 0; !ngx_queue_empty(&app->worker.waiters); n++) {

        if (status == 0 && n == app->conf.release) {
            app->worker.release_ev.handler = ngx_http_ondemand_release_batch;
            app->worker.release_ev.data = app;
            app->worker.release_ev.log = ngx_cycle->log;

            ngx_add_timer(&app->worker.release_ev, 1);
            break;
        }

        q = ngx_queue_head(&app->worker.waiters);
        ctx = ngx_queue_data(q, ngx_http_ondemand_ctx_t, queue);

        ngx_http_ondemand_unqueue(ctx);
        ctx->status = status;
        ctx->outcome = outcome;

        /* the handler set ctx->wake up to resume the request */

        if (ctx->wake.timer_set) {
            ngx_del_timer(&ctx->wake);
        }

        ngx_post_event(&ctx->wake, &ngx_posted_events);
    }

    if (status != 0 && app->worker.release_ev.timer_set) {
        ngx_del_timer(&app->worker.release_ev);
    }

    app->worker.asked = 0;
}


/*
 * Stopping or freezing: STOPPED/FROZEN go to the worker that asked; the
 * others watch the shared state until the stop is over.
 */

void
ngx_http_ondemand_watch_stop(ngx_http_ondemand_app_t *app)
{
    ngx_event_t  *ev;

    ev = &app->worker.stop_watch;

    if (!ev->timer_set) {
        ev->handler = ngx_http_ondemand_stop_watch_handler;
        ev->data = app;
        ev->log = ngx_cycle->log;

        ngx_add_timer(ev, NGX_HTTP_ONDEMAND_STOP_WATCH);
    }
}


static void
ngx_http_ondemand_stop_watch_handler(ngx_event_t *ev)
{
    ondemand::app_state       state;
    ngx_http_ondemand_app_t  *app;

    app = (ngx_http_ondemand_app_t *) ev->data;

    if (app->worker.nwaiters == 0) {
        return;
    }

    state = app->record->state.load();

    /* past the stop's deadline, the held requests take a start over */

    if ((state == ondemand::app_state::stopping
         || state == ondemand::app_state::freezing)
        && ngx_current_msec < app->record->deadline_ms.load())
    {
        ngx_add_timer(ev, NGX_HTTP_ONDEMAND_STOP_WATCH);
        return;
    }

    ngx_http_ondemand_wake_all(app, 0, NGX_HTTP_ONDEMAND_COLD);
}


static void
ngx_http_ondemand_release_batch(ngx_event_t *ev)
{
    ngx_http_ondemand_wake_all((ngx_http_ondemand_app_t *) ev->data, 0,
                               NGX_HTTP_ONDEMAND_COLD);
}
