
/*
 * ngx_http_ondemand_handler: the precontent phase handler, for main requests
 * and subrequests alike.  A warm request goes on to the proxy module at once;
 * any other is held, refused or proxied, and every verdict leaves through
 * ngx_http_ondemand_finish().  Also the resumption of held requests (woken,
 * timed out, or left by their client).
 *
 * Must not call: the upstream peer or the helper connection; helperd is
 * asked through lifecycle.
 */


#include "ngx_http_ondemand.h"


static ngx_int_t ngx_http_ondemand_new_request(ngx_http_request_t *r,
    ngx_http_ondemand_loc_conf_t *olcf, ngx_http_ondemand_ctx_t **ctxp);
static ngx_http_ondemand_ctx_t *ngx_http_ondemand_cold_ctx(
    ngx_http_request_t *r, ngx_http_ondemand_app_t *app);
static ngx_int_t ngx_http_ondemand_admit(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx);
static ngx_int_t ngx_http_ondemand_finish(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_ondemand_refuse(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx, ngx_http_ondemand_outcome_e outcome);
static ngx_int_t ngx_http_ondemand_may_wake(ngx_http_request_t *r,
    ngx_http_ondemand_loc_conf_t *olcf);
static ngx_int_t ngx_http_ondemand_proxy(ngx_http_request_t *r,
    ngx_http_ondemand_app_t *app, ngx_uint_t wake);
static ngx_int_t ngx_http_ondemand_hold(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx, ondemand::request_action action);
static void ngx_http_ondemand_resume(ngx_event_t *ev);
static void ngx_http_ondemand_hold_read(ngx_http_request_t *r);
static ngx_uint_t ngx_http_ondemand_client_gone(ngx_http_request_t *r);
static void ngx_http_ondemand_timed_out(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx);
static void ngx_http_ondemand_cleanup(void *data);
static void ngx_http_ondemand_warm_cleanup(void *data);
static void ngx_http_ondemand_quiet_cleanup(void *data);


/* the request context of every warm request: no allocation on the warm path */
static ngx_http_ondemand_ctx_t  ngx_http_ondemand_warm_ctx;


ngx_uint_t
ngx_http_ondemand_is_warm(ngx_http_ondemand_ctx_t *ctx)
{
    return ctx == &ngx_http_ondemand_warm_ctx;
}


ngx_int_t
ngx_http_ondemand_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_ondemand_ctx_t       *ctx;
    ngx_http_ondemand_loc_conf_t  *olcf;

    olcf = (ngx_http_ondemand_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_ondemand_module);

    if (olcf->app == NULL) {
        return NGX_DECLINED;
    }

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_ondemand_module);

    if (ctx == &ngx_http_ondemand_warm_ctx) {
        return NGX_DECLINED;
    }

    if (ctx == NULL) {
        rc = ngx_http_ondemand_new_request(r, olcf, &ctx);

        if (rc != NGX_OK) {
            return rc;
        }

    } else if (ctx->status == NGX_HTTP_ONDEMAND_PAGE_DUE) {
        /* a browser held long enough: the waiting page; the start goes on */
        (void) ngx_http_ondemand_finish(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE);
        return ngx_http_ondemand_send_page(r);

    } else if (ctx->status != 0) {
        /* woken up with a verdict */
        return ngx_http_ondemand_finish(r, ctx, ctx->status);
    }

    /* first time here and not warm, or woken up to re-evaluate */

    return ngx_http_ondemand_admit(r, ctx);
}


/*
 * A request seen for the first time: its app, the warm path (one atomic
 * check, one pool cleanup), or a context to hold it with.  NGX_OK: go on
 * with *ctxp; anything else is the handler's answer.
 */

static ngx_int_t
ngx_http_ondemand_new_request(ngx_http_request_t *r,
    ngx_http_ondemand_loc_conf_t *olcf, ngx_http_ondemand_ctx_t **ctxp)
{
    ngx_int_t                       wake;
    ngx_str_t                       name;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (ngx_http_complex_value(r, olcf->app, &name) != NGX_OK) {
        return NGX_ERROR;
    }

    if (name.len == 0) {
        return NGX_DECLINED;
    }

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_ondemand_module);

    app = ngx_http_ondemand_find_app(omcf, name.data, name.len);

    if (app == NULL) {
        /* a client's choice (a Host header), not the server's fault */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ondemand: no app named \"%V\"", &name);
        return NGX_HTTP_NOT_FOUND;
    }

    wake = ngx_http_ondemand_may_wake(r, olcf);

    if (wake == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ondemand::warm_enter(*app->record)) {
        app->record->counters.count(ondemand::request_outcome::warm);
        ngx_http_set_ctx(r, &ngx_http_ondemand_warm_ctx,
                         ngx_http_ondemand_module);

        return ngx_http_ondemand_proxy(r, app, wake);
    }

    *ctxp = ngx_http_ondemand_cold_ctx(r, app);

    if (*ctxp == NULL) {
        return NGX_ERROR;
    }

    (*ctxp)->no_wake = !wake;

    return NGX_OK;
}


/*
 * ondemand_wake: may this request start (or thaw) its app?  Empty or "0"
 * means no; without the directive every request may.
 */

static ngx_int_t
ngx_http_ondemand_may_wake(ngx_http_request_t *r,
    ngx_http_ondemand_loc_conf_t *olcf)
{
    ngx_str_t  value;

    if (olcf->wake == NULL) {
        return 1;
    }

    if (ngx_http_complex_value(r, olcf->wake, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    return !(value.len == 0 || (value.len == 1 && value.data[0] == '0'));
}


/* the context of a request that missed the warm path, ended with the pool */

static ngx_http_ondemand_ctx_t *
ngx_http_ondemand_cold_ctx(ngx_http_request_t *r, ngx_http_ondemand_app_t *app)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_pcalloc(r->pool, sizeof(ngx_http_ondemand_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->app = app;
    ctx->request = r;
    ctx->held_since = ngx_current_msec;
    ctx->outcome = NGX_HTTP_ONDEMAND_COLD;

    cln->handler = ngx_http_ondemand_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_ondemand_module);

    return ctx;
}


/* under the zone mutex: refuse, proxy, or hold (and start) */

static ngx_int_t
ngx_http_ondemand_admit(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx)
{
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_main_conf_t  *omcf;
    ondemand::request_action        action;
    ondemand::eviction_choice       choice;
    ngx_http_ondemand_victims_t     victims;

    app = ctx->app;

    /*
     * A client that sent its request and closed at once, or left while it
     * was held: nothing reports such a close (the read event came and went
     * with the request), so look, before it takes a queue place, starts the
     * app, or is sent on to it.
     */

    if (ngx_http_ondemand_client_gone(r)) {
        ctx->outcome = NGX_HTTP_ONDEMAND_ABANDONED;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ondemand: client closed the connection before app "
                      "\"%V\" was ready", &app->conf.name);

        return ngx_http_ondemand_finish(r, ctx,
                                        NGX_HTTP_CLIENT_CLOSED_REQUEST);
    }

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_ondemand_module);

    ngx_http_ondemand_lock();

    if (ctx->no_wake
        && app->record->state.load() != ondemand::app_state::ready)
    {
        ngx_http_ondemand_unlock();

        /* a bot's or a health check's choice, not a fault: no start */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ondemand: app \"%V\" is not running and this request "
                      "may not wake it (ondemand_wake)", &app->conf.name);

        return ngx_http_ondemand_refuse(r, ctx, NGX_HTTP_ONDEMAND_NOT_WOKEN);
    }

    if (app->record->state.load() != ondemand::app_state::ready
        && app->record->held.load() >= app->conf.queue)
    {
        ngx_http_ondemand_unlock();

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: app \"%V\" hold queue is full (%ui), "
                      "unit %V", &app->conf.name, app->conf.queue,
                      &app->conf.unit);

        return ngx_http_ondemand_refuse(r, ctx, NGX_HTTP_ONDEMAND_QUEUE_FULL);
    }

    victims.n = 0;

    if ((omcf->max_running || omcf->max_memory)
        && app->record->state.load() == ondemand::app_state::cold
        && ngx_http_ondemand_make_room(omcf, app, &victims, &choice) != NGX_OK)
    {
        ngx_http_ondemand_unlock();

        ngx_http_ondemand_evict(r->connection->log, app, &victims);

        return ngx_http_ondemand_refuse(r, ctx,
                   ngx_http_ondemand_no_room(r->connection->log, omcf, app,
                                             &choice));
    }

    action = ondemand::on_request(*app->record, ngx_pid, ngx_current_msec,
                                  app->conf.start_timeout);

    if (action == ondemand::request_action::proxy) {
        app->record->in_flight.fetch_add(1);
        ngx_http_ondemand_unlock();

        return ngx_http_ondemand_finish(r, ctx,
                                   ngx_http_ondemand_proxy(r, app, !ctx->no_wake));
    }

    app->record->held.fetch_add(1);

    ngx_http_ondemand_unlock();

    ngx_http_ondemand_evict(r->connection->log, app, &victims);

    return ngx_http_ondemand_hold(r, ctx, action);
}


/*
 * The one way out of the handler for a request that was not warm: proxied
 * (NGX_DECLINED), or an error status; 503 comes with Retry-After.
 */

static ngx_int_t
ngx_http_ondemand_finish(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_table_elt_t  *h;

    ctx->wait_time = ngx_current_msec - ctx->held_since;

    ngx_http_ondemand_count(ctx);

    if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
        if (h != NULL) {
            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            ngx_str_set(&h->value, NGX_HTTP_ONDEMAND_RETRY_AFTER);
        }
    }

    return rc;
}


/* answers 503 with Retry-After at once */

static ngx_int_t
ngx_http_ondemand_refuse(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx,
    ngx_http_ondemand_outcome_e outcome)
{
    ctx->outcome = outcome;

    return ngx_http_ondemand_finish(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE);
}


/*
 * The request is counted in flight (by the caller) and goes on to the proxy
 * module; the end of the request ends the count and stamps the activity,
 * unless the request may not wake the app: a bot's request is served while
 * the app runs, but does not keep it running.
 */

static ngx_int_t
ngx_http_ondemand_proxy(ngx_http_request_t *r, ngx_http_ondemand_app_t *app,
    ngx_uint_t wake)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ondemand::warm_leave(*app->record, ngx_current_msec);
        return NGX_ERROR;
    }

    cln->handler = wake ? ngx_http_ondemand_warm_cleanup
                        : ngx_http_ondemand_quiet_cleanup;
    cln->data = app;

    return NGX_DECLINED;
}


/*
 * The request is counted in the app's held requests (by the caller).  It
 * waits on its own event (ctx->wake): the queue posts it to wake the
 * request, its timer fires at the start timeout.  Its own event, not the
 * connection's, so that a subrequest (auth_request, mirror, SSI) can be held
 * like a main request; it resumes as a posted request.
 */

static ngx_int_t
ngx_http_ondemand_hold(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx,
    ondemand::request_action action)
{
    ngx_msec_t                deadline, page;
    ngx_http_ondemand_app_t  *app;

    app = ctx->app;

    ngx_http_ondemand_queue_add(ctx);

    deadline = ctx->held_since + app->conf.start_timeout;

    if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
        ngx_http_ondemand_timed_out(r, ctx);
        return ngx_http_ondemand_finish(r, ctx, ctx->status);
    }

    ctx->wake.handler = ngx_http_ondemand_resume;
    ctx->wake.data = ctx;
    ctx->wake.log = r->connection->log;

    /* a browser may get the waiting page before the start timeout */

    ctx->page = ngx_http_ondemand_page_applies(r);

    if (ctx->page) {
        page = ctx->held_since + ((ngx_http_ondemand_loc_conf_t *)
                   ngx_http_get_module_loc_conf(r, ngx_http_ondemand_module))
                   ->wait_page;

        if ((ngx_msec_int_t) (page - deadline) < 0) {
            deadline = (ngx_msec_int_t) (page - ngx_current_msec) > 0
                       ? page : ngx_current_msec + 1;
        }
    }

    ngx_add_timer(&ctx->wake, deadline - ngx_current_msec);

    if (r == r->main) {
        r->read_event_handler = ngx_http_ondemand_hold_read;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ondemand: holding request for app \"%V\", action %d, "
                   "%ui held here", &app->conf.name, (int) action,
                   app->worker.nwaiters);

    if (action == ondemand::request_action::hold) {
        ngx_http_ondemand_watch_stop(app);

    } else {
        ngx_http_ondemand_ask(app, action);
    }

    return NGX_AGAIN;
}


/* woken (posted by the queue) or timed out: the handler runs again */

static void
ngx_http_ondemand_resume(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = (ngx_http_ondemand_ctx_t *) ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (ev->timedout) {
        ev->timedout = 0;

        if (ctx->queued && ctx->page
            && ngx_current_msec - ctx->held_since < ctx->app->conf.start_timeout)
        {
            ngx_http_ondemand_unqueue(ctx);
            ctx->status = NGX_HTTP_ONDEMAND_PAGE_DUE;
            ctx->outcome = NGX_HTTP_ONDEMAND_WAIT_PAGE;

        } else if (ctx->queued) {
            ngx_http_ondemand_timed_out(r, ctx);
        }
    }

    if (ctx->queued) {
        return;
    }

    if (r == r->main) {
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            ngx_http_run_posted_requests(c);
            return;
        }

        r->read_event_handler = ngx_http_block_reading;
    }

    r->write_event_handler = ngx_http_core_run_phases;

    ctx->posted.request = r;
    ctx->posted.next = NULL;

    (void) ngx_http_post_request(r, &ctx->posted);

    ngx_http_run_posted_requests(c);
}


/* a read event while held: the client may have closed the connection */

static void
ngx_http_ondemand_hold_read(ngx_http_request_t *r)
{
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_ondemand_module);

    if (ctx && ctx->queued && ngx_http_ondemand_client_gone(r)) {
        ctx->outcome = NGX_HTTP_ONDEMAND_ABANDONED;
        ctx->wait_time = ngx_current_msec - ctx->held_since;
    }

    /* finalizes the request (499) if the client is gone */
    ngx_http_test_reading(r);
}


/*
 * Has the client of this main request closed its connection?  The same test
 * as ngx_http_test_reading(), without finalizing.  A subrequest's client is
 * its main request's (it notices), and an HTTP/2 stream's end comes from the
 * HTTP/2 module.
 */

static ngx_uint_t
ngx_http_ondemand_client_gone(ngx_http_request_t *r)
{
    int                n;
    char               buf[1];
    ngx_err_t          err;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    if (r != r->main) {
        return 0;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return 0;
    }
#endif

    c = r->connection;
    rev = c->read;

    if (c->error || rev->eof) {
        return 1;
    }

#if (NGX_HAVE_EPOLLRDHUP)

    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup) {
        return rev->pending_eof;
    }

#endif

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == 0) {
        return 1;
    }

    if (n == -1) {
        err = ngx_socket_errno;
        return err != NGX_EAGAIN;
    }

    return 0;
}


/* the start timeout expired: 504 */

static void
ngx_http_ondemand_timed_out(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx)
{
    ngx_http_ondemand_unqueue(ctx);

    ctx->status = NGX_HTTP_GATEWAY_TIME_OUT;
    ctx->outcome = NGX_HTTP_ONDEMAND_TIMEOUT;

    ngx_http_ondemand_log_not_ready(r->connection->log, ctx->app, NULL);
}


static void
ngx_http_ondemand_cleanup(void *data)
{
    ngx_http_ondemand_ctx_t *ctx = (ngx_http_ondemand_ctx_t *) data;

    /* the client went away, or the request ended while held */
    ngx_http_ondemand_unqueue(ctx);

    if (ctx->wake.timer_set) {
        ngx_del_timer(&ctx->wake);
    }

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }
}


static void
ngx_http_ondemand_warm_cleanup(void *data)
{
    ngx_http_ondemand_app_t *app = (ngx_http_ondemand_app_t *) data;

    ondemand::warm_leave(*app->record, ngx_current_msec);
}


/* the end of a request that may not wake the app: not activity */

static void
ngx_http_ondemand_quiet_cleanup(void *data)
{
    ngx_http_ondemand_app_t *app = (ngx_http_ondemand_app_t *) data;

    app->record->in_flight.fetch_sub(1);
}


/*
 * A warm request whose app turned out not to listen (the upstream found its
 * socket refused or missing, and re-runs the request from this handler):
 * its warm count for the app ends, and it gets a context of its own, so that
 * the handler admits it under the zone mutex like any request that missed
 * the warm path.  The request is never warm again, so it is re-run once at
 * most.  NGX_DECLINED: the request is not counted warm for this app (it
 * named another app than its upstream's), nothing changed.
 */

ngx_int_t
ngx_http_ondemand_unwarm(ngx_http_request_t *r,
    ngx_http_ondemand_app_t *app)
{
    ngx_pool_cleanup_t       *warm;
    ngx_pool_cleanup_pt       handler;
    ngx_http_ondemand_ctx_t  *ctx;

    /* subrequests share the pool: the request's own warm count is the app's */

    for (warm = r->pool->cleanup; warm; warm = warm->next) {
        if ((warm->handler == ngx_http_ondemand_warm_cleanup
             || warm->handler == ngx_http_ondemand_quiet_cleanup)
            && warm->data == app)
        {
            break;
        }
    }

    if (warm == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_ondemand_cold_ctx(r, app);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    /* a request that may not wake the app is answered "not woken" now */
    ctx->no_wake = (warm->handler == ngx_http_ondemand_quiet_cleanup);

    handler = warm->handler;
    warm->handler = NULL;
    handler(app);

    return NGX_OK;
}
