
/*
 * ngx_http_ondemand_upstream: the peer wrapper of an app's upstream, shaped
 * like nginx's keepalive module.  Every request to an app connects through it: a full
 * listen backlog (EAGAIN on a unix socket) is retried instead of becoming a
 * 502, and a refused or missing socket makes the app cold; a request that
 * found the app warm is then held (re-run from the handler) rather than
 * failed.  See docs/design.md.
 *
 * Must not call: lifecycle or queue (the directive that makes an upstream an
 * app is in ngx_http_ondemand_upstream_conf.cpp).
 */


#include "ngx_http_ondemand.h"
#include "ondemand_connect.h"


/* the upstream peer of a request to an app */
typedef struct {
    void                          *data;
    ngx_event_get_peer_pt          original_get;
    ngx_event_free_peer_pt         original_free;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt  original_set_session;
    ngx_event_save_peer_session_pt original_save_session;
#endif
    ngx_peer_connection_t         *peer;
    ngx_http_request_t            *request;
    ngx_http_ondemand_app_t       *app;
    ngx_event_t                    ev;            /* retry, or re-run */
    ngx_msec_t                     backoff;
} ngx_http_ondemand_peer_t;


static ngx_int_t ngx_http_ondemand_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_ondemand_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ondemand_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_ondemand_connect_retry(ngx_event_t *ev);
static ngx_uint_t ngx_http_ondemand_app_gone(ngx_http_ondemand_peer_t *pd,
    ngx_err_t err);
static void ngx_http_ondemand_rerun(ngx_event_t *ev);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_ondemand_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ondemand_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


/*
 * At postconfiguration, when the balancer (and keepalive) are set up: the
 * app's socket, and its upstream's peer.init wrapped.
 */

ngx_int_t
ngx_http_ondemand_wrap_upstream(ngx_conf_t *cf, ngx_http_ondemand_app_t *app)
{
    ngx_uint_t                      i;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = (ngx_http_upstream_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = (ngx_http_upstream_srv_conf_t **) umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->srv_conf
            && uscfp[i]->srv_conf[ngx_http_ondemand_module.ctx_index] == app)
        {
            break;
        }
    }

    if (i == umcf->upstreams.nelts
        || ngx_http_ondemand_app_socket(cf, app, uscfp[i]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    app->balancer.init_peer = uscfp[i]->peer.init;
    uscfp[i]->peer.init = ngx_http_ondemand_init_peer;

    return NGX_OK;
}


/*
 * Every request to an app gets the peer wrapper: one pool allocation, no
 * lock, no message to helperd.  The wrapper connects itself only when the
 * balancer gives it a fresh unix: address; a cached keepalive connection
 * and any other address go nginx's own way.
 */

static ngx_int_t
ngx_http_ondemand_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_t       *u;
    ngx_http_ondemand_app_t   *app;
    ngx_http_ondemand_peer_t  *pd;

    app = (ngx_http_ondemand_app_t *)
              ngx_http_conf_upstream_srv_conf(us, ngx_http_ondemand_module);

    if (app->balancer.init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    pd = (ngx_http_ondemand_peer_t *)
             ngx_pcalloc(r->pool, sizeof(ngx_http_ondemand_peer_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    u = r->upstream;

    pd->data = u->peer.data;
    pd->original_get = u->peer.get;
    pd->original_free = u->peer.free;
    pd->peer = &u->peer;
    pd->request = r;
    pd->app = app;

    pd->ev.data = pd;
    pd->ev.log = r->connection->log;

    u->peer.data = pd;
    u->peer.get = ngx_http_ondemand_get_peer;
    u->peer.free = ngx_http_ondemand_free_peer;

#if (NGX_HTTP_SSL)
    pd->original_set_session = u->peer.set_session;
    pd->original_save_session = u->peer.save_session;
    u->peer.set_session = ngx_http_ondemand_set_session;
    u->peer.save_session = ngx_http_ondemand_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    ngx_int_t          get;
    ngx_err_t          err;
    ngx_connection_t  *c;

    get = pd->original_get(pc, pd->data);

    if (get != NGX_OK || pc->sockaddr->sa_family != AF_UNIX) {
        /* a cached keepalive connection, an error, or not a unix socket */
        return get;
    }

    c = ngx_http_ondemand_unix_connect(pc->sockaddr, pc->socklen, pc->log,
                                       &err);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->type = SOCK_STREAM;
    c->sendfile = 1;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->log_error = pc->log_error;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    pc->connection = c;

    switch (ondemand::classify_connect(err)) {

    case ondemand::connect_verdict::connected:

        if (ngx_add_conn && ngx_add_conn(c) == NGX_ERROR) {
            break;
        }

        c->write->ready = 1;

        return NGX_DONE;

    case ondemand::connect_verdict::retry:

        /*
         * the app's listen backlog is full: retry shortly; the upstream's
         * connect timeout (on c->write) still bounds the wait
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "ondemand: backlog of app \"%V\" full, retrying",
                       &pd->app->conf.name);

        pd->backoff = ondemand::next_connect_backoff(0);
        pd->ev.handler = ngx_http_ondemand_connect_retry;
        ngx_add_timer(&pd->ev, pd->backoff);

        return NGX_AGAIN;

    case ondemand::connect_verdict::gone:

        if (ngx_http_ondemand_app_gone(pd, err)) {

            /*
             * held instead: the upstream is ended and the request re-run
             * from a posted event, once this connect is over; until then c,
             * never connected, stands for the connection being made
             */

            pd->ev.handler = ngx_http_ondemand_rerun;
            ngx_post_event(&pd->ev, &ngx_posted_events);

            return NGX_AGAIN;
        }

        break;

    default:
        ngx_log_error(NGX_LOG_ERR, pc->log, err, "connect() to %V failed",
                      pc->name);
        break;
    }

    ngx_close_connection(c);
    pc->connection = NULL;

    return NGX_DECLINED;
}


static void
ngx_http_ondemand_connect_retry(ngx_event_t *ev)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) ev->data;

    ngx_err_t               err;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    pc = pd->peer;
    c = pc->connection;

    err = (connect(c->fd, pc->sockaddr, pc->socklen) == -1)
          ? ngx_socket_errno : 0;

    switch (ondemand::classify_connect(err)) {

    case ondemand::connect_verdict::connected:

        if (ngx_add_conn && ngx_add_conn(c) == NGX_ERROR) {
            break;
        }

        c->write->ready = 1;
        break;

    case ondemand::connect_verdict::retry:
        pd->backoff = ondemand::next_connect_backoff(pd->backoff);
        ngx_add_timer(ev, pd->backoff);
        return;

    case ondemand::connect_verdict::gone:

        if (ngx_http_ondemand_app_gone(pd, err)) {
            ngx_http_ondemand_rerun(ev);
            return;
        }

        break;

    default:
        ngx_log_error(NGX_LOG_ERR, pc->log, err, "connect() to %V failed",
                      pc->name);
        break;
    }

    /*
     * the upstream's write handler goes on: it sends the request, or its
     * send() on a socket that did not connect fails it
     */

    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * The app's socket refused the connection or is missing: nothing listens,
 * the app is cold (helperd's DOWN cannot have come if helperd was down when
 * the app went away).  Returns 1 when the request is to be held rather than
 * failed: a main request that took the warm path for this app, so the app
 * was ready a moment ago, and whose body is buffered, so that it can be sent
 * again; its warm count has then ended (ngx_http_ondemand_unwarm()).  Any
 * other request fails with 502 as nginx's own connect would; a request is
 * never re-run twice.
 */

static ngx_uint_t
ngx_http_ondemand_app_gone(ngx_http_ondemand_peer_t *pd, ngx_err_t err)
{
    bool                      down;
    ngx_uint_t                rerun;
    ngx_http_request_t       *r;
    ngx_http_ondemand_app_t  *app;
    ngx_http_ondemand_ctx_t  *ctx;

    r = pd->request;
    app = pd->app;

    ngx_http_ondemand_lock();
    down = ondemand::on_down(*app->record);
    ngx_http_ondemand_unlock();

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_ondemand_module);

    rerun = (r == r->main && ngx_http_ondemand_is_warm(ctx)
             && !r->request_body_no_buffering
             && ngx_http_ondemand_unwarm(r, app) == NGX_OK);

    ngx_log_error(NGX_LOG_WARN, pd->peer->log, err,
                  "ondemand: app \"%V\" is not running%s (connect() to %V), "
                  "%s, unit %V", &app->conf.name, down ? ", made it cold" : "",
                  pd->peer->name,
                  rerun ? "holding the request until it is started"
                        : "it will be started on the next request",
                  &app->conf.unit);

    return rerun;
}


/*
 * A warm request whose app is gone goes back to the module's handler, as if
 * it arrived in the precontent phase again: the upstream is ended the way
 * ngx_http_upstream_create() ends an earlier one (a reference for the
 * request, then the upstream's own cleanup, which frees the peer, closes the
 * connection with its timers, and drops the reference; the warm count
 * ended already, in ngx_http_ondemand_app_gone()), and the phases run again
 * from the handler,
 * which holds the request (and starts the app), or proxies it if the app is
 * ready again.  The content handler (proxy_pass) stays; a new upstream takes
 * the buffered body.  Nothing before the precontent phase runs twice.
 */

static void
ngx_http_ondemand_rerun(ngx_event_t *ev)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) ev->data;

    ngx_uint_t                  i;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_upstream_t        *u;
    ngx_http_phase_handler_t   *ph;
    ngx_http_core_main_conf_t  *cmcf;

    r = pd->request;
    c = r->connection;
    u = r->upstream;

    if (u == NULL || u->cleanup == NULL || u->peer.data != pd) {
        /* cannot happen: the end of the upstream frees the peer (and ev) */
        return;
    }

    r->main->count++;
    (*u->cleanup)(r);

    c->log->action = NULL;

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_core_module);
    ph = cmcf->phase_engine.handlers;

    for (i = 0; ph[i].checker; i++) {
        if (ph[i].handler == ngx_http_ondemand_handler) {
            break;
        }
    }

    if (ph[i].checker == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

    } else {
        r->phase_handler = i;
        r->write_event_handler = ngx_http_core_run_phases;

        ngx_http_core_run_phases(r);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * Called whenever the upstream lets go of the peer: after each attempt, and
 * when the request ends however it ends (the upstream's own cleanup frees
 * it), so the retry timer and a posted re-run never outlive the request.
 */

static void
ngx_http_ondemand_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    if (pd->ev.timer_set) {
        ngx_del_timer(&pd->ev);
    }

    if (pd->ev.posted) {
        ngx_delete_posted_event(&pd->ev);
    }

    pd->original_free(pc, pd->data, state);
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_ondemand_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    return pd->original_set_session(pc, pd->data);
}


static void
ngx_http_ondemand_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    pd->original_save_session(pc, pd->data);
}

#endif
