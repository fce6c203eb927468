
/*
 * ngx_http_ondemand_module: holds requests for apps that are not running,
 * has helperd start their systemd units, and releases the requests to the
 * stock proxy module once the app accepts connections.  See docs/.
 *
 * C++ compiled by nginx's own build (-fno-exceptions -fno-rtti, see
 * scripts/ngx-cc), in nginx's style.  Everything that lives in nginx pools
 * or shared memory is trivially destructible.
 */


extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string_view>

#include "ondemand_protocol.h"
#include "ondemand_app_state.h"


namespace proto = ondemand::proto;


#define NGX_HTTP_ONDEMAND_INSTANCE_LEN     32
#define NGX_HTTP_ONDEMAND_BACKOFF_MIN      50
#define NGX_HTTP_ONDEMAND_BACKOFF_MAX      2000
#define NGX_HTTP_ONDEMAND_WARM_RETRY_MIN   1000
#define NGX_HTTP_ONDEMAND_WARM_RETRY_MAX   60000
#define NGX_HTTP_ONDEMAND_OUT_MAX          (4 * 1024 * 1024)
#define NGX_HTTP_ONDEMAND_RETRY_AFTER      "5"
#define NGX_HTTP_ONDEMAND_STOP_WATCH       10


typedef struct {
    ngx_str_node_t                 sn;
    ondemand::app_record           record;
    u_char                         name[1];
} ngx_http_ondemand_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    /* sent in HELLO by every worker: helperd's name for this nginx */
    u_char                         instance[NGX_HTTP_ONDEMAND_INSTANCE_LEN];
} ngx_http_ondemand_shctx_t;


typedef struct ngx_http_ondemand_main_conf_s  ngx_http_ondemand_main_conf_t;


typedef struct {
    ngx_http_ondemand_shctx_t     *sh;
    ngx_slab_pool_t               *shpool;
    ngx_http_ondemand_main_conf_t *main_conf;
} ngx_http_ondemand_zone_ctx_t;


/* one per upstream{} block; "enabled" when it has an "ondemand" directive */
typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      unit;
    ngx_str_t                      ready;
    ngx_str_t                      socket;
    ngx_msec_t                     start_timeout;
    ngx_msec_t                     idle_timeout;
    ngx_msec_t                     stop_timeout;
    ngx_msec_t                     frozen_timeout;
    ngx_uint_t                     queue;
    ngx_uint_t                     release;       /* per batch */
    ngx_uint_t                     failed_status;

    ondemand::app_record          *record;
    ngx_http_upstream_init_peer_pt original_init_peer;
    ngx_event_free_peer_pt         original_free;  /* the balancer's */

    /* this worker's held requests */
    ngx_queue_t                    waiters;
    ngx_uint_t                     nwaiters;
    ngx_queue_t                    busy_link;     /* in helper.busy_apps */
    ngx_event_t                    release_ev;    /* next batch */
    ngx_event_t                    stop_watch;    /* held while stopping */
    ngx_event_t                    warm_retry;    /* keep_warm after a failure */
    ngx_msec_t                     warm_backoff;
    uint64_t                       asked_gen;     /* START/WAIT sent for it */
    uint64_t                       reported_active; /* last_active sent in USE */

    unsigned                       enabled:1;
    unsigned                       asked:1;
    unsigned                       keep_warm:1;
    unsigned                       freeze:1;
} ngx_http_ondemand_app_t;


struct ngx_http_ondemand_main_conf_s {
    ngx_shm_zone_t                *shm_zone;
    ngx_addr_t                    *helper;
    ngx_msec_t                     helper_timeout;
    ngx_array_t                    apps;          /* ngx_http_ondemand_app_t * */
    ngx_hash_t                     apps_hash;
    ngx_msec_t                     idle_interval;  /* 0: no app stops */
    ngx_uint_t                     max_running;    /* 0: no cap */
};


typedef struct {
    ngx_http_complex_value_t      *app;
} ngx_http_ondemand_loc_conf_t;


/* what happened to a request, for $ondemand_status */
typedef enum {
    NGX_HTTP_ONDEMAND_WARM = 0,
    NGX_HTTP_ONDEMAND_COLD,
    NGX_HTTP_ONDEMAND_QUEUE_FULL,
    NGX_HTTP_ONDEMAND_TIMEOUT,
    NGX_HTTP_ONDEMAND_FAILED,
    NGX_HTTP_ONDEMAND_UNAVAILABLE
} ngx_http_ondemand_outcome_e;


typedef struct {
    ngx_http_ondemand_app_t       *app;
    ngx_http_request_t            *request;
    ngx_msec_t                     wait_time;
    ngx_http_ondemand_outcome_e    outcome;
    ngx_queue_t                    queue;
    ngx_msec_t                     held_since;
    ngx_int_t                      status;        /* to finalize with */
    unsigned                       queued:1;
} ngx_http_ondemand_ctx_t;


/*
 * The upstream peer of a released request: it connects itself so that a
 * full listen backlog (EAGAIN on a unix socket) is retried instead of
 * becoming a 502.
 */
typedef struct {
    void                          *data;
    ngx_event_get_peer_pt          original_get;
    ngx_event_free_peer_pt         original_free;
    ngx_peer_connection_t         *peer;
    ngx_http_ondemand_app_t       *app;
    ngx_event_t                    retry;
    ngx_msec_t                     backoff;
} ngx_http_ondemand_peer_t;


/* the worker's connection to helperd */
typedef struct {
    ngx_connection_t              *connection;
    u_char                        *in;
    size_t                         in_len;
    u_char                        *out;
    size_t                         out_len;
    size_t                         out_size;
    ngx_event_t                    reconnect;
    ngx_event_t                    deadline;
    ngx_event_t                    idle;
    ngx_msec_t                     backoff;
    ngx_queue_t                    busy_apps;     /* apps with waiters */
    ngx_log_t                     *log;
    unsigned                       connected:1;
    unsigned                       down_logged:1;
} ngx_http_ondemand_helper_t;


static ngx_int_t ngx_http_ondemand_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ondemand_hold(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx, ondemand::request_action action);
static void ngx_http_ondemand_hold_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ondemand_proxy(ngx_http_request_t *r,
    ngx_http_ondemand_app_t *app);
static ngx_int_t ngx_http_ondemand_refuse(ngx_http_request_t *r,
    ngx_http_ondemand_ctx_t *ctx, ngx_http_ondemand_outcome_e outcome);
static ngx_int_t ngx_http_ondemand_make_room(
    ngx_http_ondemand_main_conf_t *omcf, ngx_http_ondemand_app_t *app,
    ngx_http_ondemand_app_t **victim);
static void ngx_http_ondemand_send_stop(ngx_http_ondemand_app_t *app);
static void ngx_http_ondemand_warm_up(void);
static void ngx_http_ondemand_warm_retry(ngx_event_t *ev);
static void ngx_http_ondemand_unqueue(ngx_http_ondemand_ctx_t *ctx);
static void ngx_http_ondemand_cleanup(void *data);
static void ngx_http_ondemand_warm_cleanup(void *data);
static void ngx_http_ondemand_wake_all(ngx_http_ondemand_app_t *app,
    ngx_int_t status, ngx_http_ondemand_outcome_e outcome);
static void ngx_http_ondemand_release_batch(ngx_event_t *ev);
static void ngx_http_ondemand_watch_stop(ngx_event_t *ev);
static ngx_http_ondemand_app_t *ngx_http_ondemand_find_app(
    ngx_http_ondemand_main_conf_t *mcf, u_char *name, size_t len);

static void ngx_http_ondemand_ask(ngx_http_ondemand_app_t *app,
    ondemand::request_action action);
static ngx_int_t ngx_http_ondemand_send(const proto::message &msg);
static void ngx_http_ondemand_connect(ngx_event_t *ev);
static ngx_int_t ngx_http_ondemand_hello(
    ngx_http_ondemand_main_conf_t *omcf);
static void ngx_http_ondemand_helper_close(const char *why);
static void ngx_http_ondemand_reconnect_now(void);
static void ngx_http_ondemand_helper_read(ngx_event_t *rev);
static void ngx_http_ondemand_helper_write(ngx_event_t *wev);
static void ngx_http_ondemand_helper_line(std::string_view line);
static void ngx_http_ondemand_helper_deadline(ngx_event_t *ev);
static void ngx_http_ondemand_resync(void);
static void ngx_http_ondemand_resend_stops(void);
static void ngx_http_ondemand_idle_scan(ngx_event_t *ev);
static void ngx_http_ondemand_report_use(ngx_http_ondemand_app_t *app);
static ngx_int_t ngx_http_ondemand_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_ondemand_wait_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_ondemand_add_variables(ngx_conf_t *cf);

static ngx_int_t ngx_http_ondemand_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_ondemand_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ondemand_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_ondemand_free_warm_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_ondemand_connect_retry(ngx_event_t *ev);
static void ngx_http_ondemand_peer_cleanup(void *data);
static ngx_int_t ngx_http_ondemand_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void *ngx_http_ondemand_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ondemand_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ondemand_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_ondemand_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ondemand_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ondemand_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ondemand_helper(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ondemand(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ondemand_app(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ondemand_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_ondemand_init_process(ngx_cycle_t *cycle);
static void ngx_http_ondemand_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_ondemand_commands[] = {

    { ngx_string("ondemand_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ondemand_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ondemand_helper"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ondemand_helper,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ondemand_helper_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ondemand_main_conf_t, helper_timeout),
      NULL },

    { ngx_string("ondemand_max_running"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ondemand_main_conf_t, max_running),
      NULL },

    { ngx_string("ondemand"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_ondemand,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ondemand_app"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ondemand_app,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_variable_t  ngx_http_ondemand_vars[] = {

    { ngx_string("ondemand_status"), NULL,
      ngx_http_ondemand_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ondemand_wait_time"), NULL,
      ngx_http_ondemand_wait_time_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_ondemand_outcomes[] = {
    ngx_string("warm"),
    ngx_string("cold"),
    ngx_string("queued-full"),
    ngx_string("timeout"),
    ngx_string("failed"),
    ngx_string("unavailable")
};


static ngx_http_module_t  ngx_http_ondemand_module_ctx = {
    ngx_http_ondemand_add_variables,       /* preconfiguration */
    ngx_http_ondemand_postconfiguration,   /* postconfiguration */

    ngx_http_ondemand_create_main_conf,    /* create main configuration */
    ngx_http_ondemand_init_main_conf,      /* init main configuration */

    ngx_http_ondemand_create_srv_conf,     /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ondemand_create_loc_conf,     /* create location configuration */
    ngx_http_ondemand_merge_loc_conf       /* merge location configuration */
};


extern "C" {
extern ngx_module_t  ngx_http_ondemand_module;
}


ngx_module_t  ngx_http_ondemand_module = {
    NGX_MODULE_V1,
    &ngx_http_ondemand_module_ctx,         /* module context */
    ngx_http_ondemand_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_ondemand_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ondemand_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_ondemand_helper_t  ngx_http_ondemand_helper_conn;


/* the main configuration of the running cycle, for event handlers */

static ngx_http_ondemand_main_conf_t *
ngx_http_ondemand_cycle_conf(void)
{
    return (ngx_http_ondemand_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_ondemand_module);
}

/* the request context of every warm request: no allocation on the warm path */
static ngx_http_ondemand_ctx_t  ngx_http_ondemand_warm_ctx;


static std::string_view
ngx_http_ondemand_sv(ngx_str_t *s)
{
    return std::string_view((const char *) s->data, s->len);
}


/* request path */

static ngx_int_t
ngx_http_ondemand_handler(ngx_http_request_t *r)
{
    ngx_str_t                      name;
    ngx_pool_cleanup_t            *cln;
    ngx_http_ondemand_app_t       *app;
    ngx_http_ondemand_ctx_t       *ctx;
    ngx_http_ondemand_loc_conf_t  *olcf;
    ngx_http_ondemand_app_t       *victim;
    ngx_http_ondemand_main_conf_t *omcf;
    ondemand::request_action       action;

    if (r != r->main) {
        return NGX_DECLINED;
    }

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

    if (ctx != NULL) {
        /* woken up: re-evaluate, unless the wake carried a verdict */

        if (ctx->status != 0) {
            ctx->wait_time = ngx_current_msec - ctx->held_since;

            if (ctx->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
                ngx_table_elt_t  *h;

                h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
                if (h != NULL) {
                    h->hash = 1;
                    ngx_str_set(&h->key, "Retry-After");
                    ngx_str_set(&h->value, NGX_HTTP_ONDEMAND_RETRY_AFTER);
                }
            }

            return ctx->status;
        }

        app = ctx->app;
        goto slow;
    }

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
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: no app named \"%V\"", &name);
        return NGX_HTTP_NOT_FOUND;
    }

    /* the warm path: one atomic check, one pool cleanup */

    if (ondemand::warm_enter(*app->record)) {
        ngx_http_set_ctx(r, &ngx_http_ondemand_warm_ctx,
                         ngx_http_ondemand_module);

        return ngx_http_ondemand_proxy(r, app);
    }

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_pcalloc(r->pool, sizeof(ngx_http_ondemand_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    ctx->app = app;
    ctx->request = r;
    ctx->held_since = ngx_current_msec;
    ctx->outcome = NGX_HTTP_ONDEMAND_COLD;

    cln->handler = ngx_http_ondemand_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_ondemand_module);

slow:

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_ondemand_module);

    ngx_http_ondemand_zone_ctx_t *zctx =
        (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    ngx_shmtx_lock(&zctx->shpool->mutex);

    if (app->record->state.load() != ondemand::app_state::ready
        && app->record->held.load() >= app->queue)
    {
        ngx_shmtx_unlock(&zctx->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: app \"%V\" hold queue is full (%ui)",
                      &app->name, app->queue);

        return ngx_http_ondemand_refuse(r, ctx, NGX_HTTP_ONDEMAND_QUEUE_FULL);
    }

    victim = NULL;

    if (omcf->max_running
        && app->record->state.load() == ondemand::app_state::cold
        && ngx_http_ondemand_make_room(omcf, app, &victim) != NGX_OK)
    {
        ngx_shmtx_unlock(&zctx->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: app \"%V\" cannot start: %ui apps are "
                      "running (ondemand_max_running) and none is idle",
                      &app->name, omcf->max_running);

        return ngx_http_ondemand_refuse(r, ctx, NGX_HTTP_ONDEMAND_QUEUE_FULL);
    }

    action = ondemand::on_request(*app->record, ngx_pid, ngx_current_msec,
                                  app->start_timeout);

    if (action == ondemand::request_action::proxy) {
        app->record->in_flight.fetch_add(1);
        ngx_shmtx_unlock(&zctx->shpool->mutex);

        ctx->wait_time = ngx_current_msec - ctx->held_since;

        return ngx_http_ondemand_proxy(r, app);
    }

    app->record->held.fetch_add(1);

    ngx_shmtx_unlock(&zctx->shpool->mutex);

    if (victim) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ondemand: stopping app \"%V\", the least recently "
                      "used, to make room for app \"%V\"",
                      &victim->name, &app->name);

        ngx_http_ondemand_send_stop(victim);
    }

    return ngx_http_ondemand_hold(r, ctx, action);
}


/*
 * The request is counted in flight (by the caller) and goes on to the proxy
 * module; the end of the request ends the count and stamps the activity.
 */

static ngx_int_t
ngx_http_ondemand_proxy(ngx_http_request_t *r, ngx_http_ondemand_app_t *app)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ondemand::warm_leave(*app->record, ngx_current_msec);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ondemand_warm_cleanup;
    cln->data = app;

    return NGX_DECLINED;
}


/* answers 503 with Retry-After at once */

static ngx_int_t
ngx_http_ondemand_refuse(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx,
    ngx_http_ondemand_outcome_e outcome)
{
    ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
    ctx->outcome = outcome;

    return ngx_http_ondemand_handler(r);
}


/*
 * Under the zone mutex, before a cold app takes a running slot: when
 * ondemand_max_running apps run, the least recently used idle one is stopped.
 */

static ngx_int_t
ngx_http_ondemand_make_room(ngx_http_ondemand_main_conf_t *omcf,
    ngx_http_ondemand_app_t *app, ngx_http_ondemand_app_t **victim)
{
    ngx_uint_t                 i, running;
    ngx_http_ondemand_app_t   *a, **apps, *lru;

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;
    running = 0;
    lru = NULL;

    for (i = 0; i < omcf->apps.nelts; i++) {
        a = apps[i];

        if (!ondemand::running(*a->record)) {
            continue;
        }

        running++;

        if (a != app && !a->keep_warm && ondemand::evictable(*a->record)
            && (lru == NULL
                || a->record->last_active_ms.load()
                   < lru->record->last_active_ms.load()))
        {
            lru = a;
        }
    }

    if (running < omcf->max_running) {
        return NGX_OK;
    }

    if (lru == NULL
        || !ondemand::begin_eviction(*lru->record, ngx_pid, ngx_current_msec,
                                     lru->stop_timeout))
    {
        return NGX_DECLINED;
    }

    *victim = lru;

    return NGX_OK;
}


/* STOP, or FREEZE for an app whose stop is a freeze */

static void
ngx_http_ondemand_send_stop(ngx_http_ondemand_app_t *app)
{
    proto::message  msg;

    msg.kind = (app->record->state.load() == ondemand::app_state::freezing)
               ? proto::verb::freeze : proto::verb::stop;
    msg.app = ngx_http_ondemand_sv(&app->name);
    msg.gen = app->record->gen.load();
    msg.unit = ngx_http_ondemand_sv(&app->unit);

    /* without the helper, ngx_http_ondemand_resend_stops() sends it later */

    if (ngx_http_ondemand_helper_conn.connected) {
        (void) ngx_http_ondemand_send(msg);
    }
}


static ngx_int_t
ngx_http_ondemand_hold(ngx_http_request_t *r, ngx_http_ondemand_ctx_t *ctx,
    ondemand::request_action action)
{
    ngx_msec_t                deadline;
    ngx_event_t              *wev;
    ngx_http_ondemand_app_t  *app;

    app = ctx->app;
    wev = r->connection->write;

    deadline = ctx->held_since + app->start_timeout;

    if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
        app->record->held.fetch_sub(1);
        ctx->outcome = NGX_HTTP_ONDEMAND_TIMEOUT;
        ctx->wait_time = ngx_current_msec - ctx->held_since;
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: app \"%V\" not ready within %M ms",
                      &app->name, app->start_timeout);
        return NGX_HTTP_GATEWAY_TIME_OUT;
    }

    ngx_queue_insert_tail(&app->waiters, &ctx->queue);
    ctx->queued = 1;

    if (app->nwaiters++ == 0) {
        ngx_queue_insert_tail(&ngx_http_ondemand_helper_conn.busy_apps,
                              &app->busy_link);
    }

    if (!wev->timer_set) {
        ngx_add_timer(wev, deadline - ngx_current_msec);
    }

    wev->delayed = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_ondemand_hold_handler;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ondemand: holding request for app \"%V\", action %d, "
                   "%ui held here", &app->name, (int) action, app->nwaiters);

    ngx_http_ondemand_ask(app, action);

    return NGX_AGAIN;
}


static void
ngx_http_ondemand_hold_handler(ngx_http_request_t *r)
{
    ngx_event_t              *wev;
    ngx_http_ondemand_ctx_t  *ctx;

    wev = r->connection->write;
    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_ondemand_module);

    if (ctx->queued) {

        if (wev->delayed) {
            /* not our event: keep holding */

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            }

            return;
        }

        /* the start timeout expired */

        ngx_http_ondemand_unqueue(ctx);
        ctx->outcome = NGX_HTTP_ONDEMAND_TIMEOUT;
        ctx->wait_time = ngx_current_msec - ctx->held_since;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ondemand: app \"%V\" not ready within %M ms",
                      &ctx->app->name, ctx->app->start_timeout);

        ngx_http_finalize_request(r, NGX_HTTP_GATEWAY_TIME_OUT);
        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


static void
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

    if (--app->nwaiters == 0) {
        ngx_queue_remove(&app->busy_link);
    }
}


static void
ngx_http_ondemand_cleanup(void *data)
{
    ngx_http_ondemand_ctx_t *ctx = (ngx_http_ondemand_ctx_t *) data;

    /* the client went away, or the request ended while held */
    ngx_http_ondemand_unqueue(ctx);
}


static void
ngx_http_ondemand_warm_cleanup(void *data)
{
    ngx_http_ondemand_app_t *app = (ngx_http_ondemand_app_t *) data;

    ondemand::warm_leave(*app->record, ngx_current_msec);
}


/*
 * Releases (status 0: re-evaluate) or fails the requests held here.  A
 * release goes in batches a millisecond apart, so that a herd does not
 * overflow the app's listen backlog: Linux answers EAGAIN to a connect() on
 * a full unix socket backlog, which would be a 502.
 */

static void
ngx_http_ondemand_wake_all(ngx_http_ondemand_app_t *app, ngx_int_t status,
    ngx_http_ondemand_outcome_e outcome)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_event_t              *wev;
    ngx_http_ondemand_ctx_t  *ctx;

    if (status == 0 && app->release_ev.timer_set) {
        /* a release is under way: its next batch re-evaluates */
        return;
    }

    for (n = 0; !ngx_queue_empty(&app->waiters); n++) {

        if (status == 0 && n == app->release) {
            app->release_ev.handler = ngx_http_ondemand_release_batch;
            app->release_ev.data = app;
            app->release_ev.log = ngx_cycle->log;

            ngx_add_timer(&app->release_ev, 1);
            break;
        }

        q = ngx_queue_head(&app->waiters);
        ctx = ngx_queue_data(q, ngx_http_ondemand_ctx_t, queue);

        ngx_http_ondemand_unqueue(ctx);
        ctx->status = status;
        ctx->outcome = outcome;

        wev = ctx->request->connection->write;

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        wev->delayed = 0;
        ngx_post_event(wev, &ngx_posted_events);
    }

    if (status != 0 && app->release_ev.timer_set) {
        ngx_del_timer(&app->release_ev);
    }

    app->asked = 0;
}


static void
ngx_http_ondemand_watch_stop(ngx_event_t *ev)
{
    ondemand::app_state       state;
    ngx_http_ondemand_app_t  *app;

    app = (ngx_http_ondemand_app_t *) ev->data;

    if (app->nwaiters == 0) {
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


static ngx_http_ondemand_app_t *
ngx_http_ondemand_find_app(ngx_http_ondemand_main_conf_t *omcf, u_char *name,
    size_t len)
{
    u_char      buf[proto::max_app_name_length];
    ngx_uint_t  key;

    if (len == 0 || len > proto::max_app_name_length) {
        return NULL;
    }

    key = ngx_hash_strlow(buf, name, len);

    return (ngx_http_ondemand_app_t *)
               ngx_hash_find(&omcf->apps_hash, key, buf, len);
}


/* helperd connection */

static void
ngx_http_ondemand_ask(ngx_http_ondemand_app_t *app,
    ondemand::request_action action)
{
    uint64_t         gen;
    proto::message   msg;

    if (action == ondemand::request_action::hold) {
        /*
         * stopping or freezing: STOPPED/FROZEN go to the worker that asked;
         * the others watch the shared state until the stop is over
         */

        if (!app->stop_watch.timer_set) {
            app->stop_watch.handler = ngx_http_ondemand_watch_stop;
            app->stop_watch.data = app;
            app->stop_watch.log = ngx_cycle->log;

            ngx_add_timer(&app->stop_watch, NGX_HTTP_ONDEMAND_STOP_WATCH);
        }

        return;
    }

    gen = app->record->gen.load();

    if (action != ondemand::request_action::hold_and_start
        && app->asked && app->asked_gen == gen)
    {
        return;
    }

    if (!ngx_http_ondemand_helper_conn.connected) {
        /* ngx_http_ondemand_resync() asks once connected */

        ngx_http_ondemand_reconnect_now();

        if (ngx_http_ondemand_helper_conn.connected) {
            return;
        }

        if (!ngx_http_ondemand_helper_conn.deadline.timer_set) {
            ngx_http_ondemand_main_conf_t  *omcf;

            omcf = ngx_http_ondemand_cycle_conf();

            ngx_add_timer(&ngx_http_ondemand_helper_conn.deadline,
                          omcf->helper_timeout);
        }

        return;
    }

    if (action == ondemand::request_action::hold_and_start) {
        msg.kind = proto::verb::start;
        msg.unit = ngx_http_ondemand_sv(&app->unit);
        msg.ready = ngx_http_ondemand_sv(&app->ready);
        msg.timeout_ms = app->start_timeout;
        msg.socket = ngx_http_ondemand_sv(&app->socket);

    } else {
        msg.kind = proto::verb::wait;
    }

    msg.app = ngx_http_ondemand_sv(&app->name);
    msg.gen = gen;

    if (ngx_http_ondemand_send(msg) == NGX_OK) {
        app->asked = 1;
        app->asked_gen = gen;
    }
}


static ngx_int_t
ngx_http_ondemand_send(const proto::message &msg)
{
    size_t                       n, size;
    u_char                      *p;
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    if (h->out_size - h->out_len < proto::max_line_length + 1) {
        size = h->out_size * 2;

        if (size > NGX_HTTP_ONDEMAND_OUT_MAX) {
            ngx_http_ondemand_helper_close("helper is not reading");
            return NGX_ERROR;
        }

        p = (u_char *) ngx_alloc(size, h->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, h->out, h->out_len);
        ngx_free(h->out);
        h->out = p;
        h->out_size = size;
    }

    n = proto::format(msg, (char *) h->out + h->out_len,
                      h->out_size - h->out_len);
    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, h->log, 0,
                      "ondemand: cannot encode a %s line",
                      proto::verb_name(msg.kind).data());
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "ondemand: to helper: %*s", n - 1, h->out + h->out_len);

    h->out_len += n;

    ngx_http_ondemand_helper_write(h->connection->write);

    return NGX_OK;
}


static void
ngx_http_ondemand_connect(ngx_event_t *ev)
{
    int                             rc;
    ngx_err_t                       err;
    ngx_socket_t                    s;
    ngx_connection_t               *c;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_main_conf_t  *omcf;

    h = &ngx_http_ondemand_helper_conn;

    omcf = ngx_http_ondemand_cycle_conf();

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, h->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        goto retry;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, h->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        ngx_close_socket(s);
        goto retry;
    }

    rc = connect(s, omcf->helper->sockaddr, omcf->helper->socklen);
    err = ngx_socket_errno;

    if (rc == -1 && err != NGX_EINPROGRESS) {
        if (!h->down_logged) {
            ngx_log_error(NGX_LOG_ERR, h->log, err,
                          "ondemand: cannot connect to helper \"%V\", "
                          "retrying", &omcf->helper->name);
            h->down_logged = 1;
        }

        ngx_close_socket(s);
        goto retry;
    }

    c = ngx_get_connection(s, h->log);
    if (c == NULL) {
        ngx_close_socket(s);
        goto retry;
    }

    c->data = h;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;
    c->read->handler = ngx_http_ondemand_helper_read;
    c->write->handler = ngx_http_ondemand_helper_write;
    c->read->log = h->log;
    c->write->log = h->log;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            ngx_close_connection(c);
            goto retry;
        }

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_close_connection(c);
        goto retry;
    }

    h->connection = c;
    h->connected = 1;
    h->in_len = 0;
    h->out_len = 0;
    h->backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;

    if (h->down_logged) {
        ngx_log_error(NGX_LOG_NOTICE, h->log, 0,
                      "ondemand: connected to helper \"%V\"",
                      &omcf->helper->name);
        h->down_logged = 0;
    }

    if (h->deadline.timer_set) {
        ngx_del_timer(&h->deadline);
    }

    if (ngx_http_ondemand_hello(omcf) != NGX_OK) {
        return;
    }

    ngx_http_ondemand_resync();

    return;

retry:

    /* exponential backoff with jitter, so that workers do not reconnect in step */

    ngx_add_timer(&h->reconnect, h->backoff / 2 + ngx_random() % h->backoff);

    h->backoff = ngx_min(h->backoff * 2, NGX_HTTP_ONDEMAND_BACKOFF_MAX);

    if (!ngx_queue_empty(&h->busy_apps) && !h->deadline.timer_set) {
        ngx_add_timer(&h->deadline, omcf->helper_timeout);
    }
}


/*
 * The first line on a new connection: the workers of one nginx share the
 * instance name, so that helperd counts their USE leases as one nginx's.
 */

static ngx_int_t
ngx_http_ondemand_hello(ngx_http_ondemand_main_conf_t *omcf)
{
    proto::message                 msg;
    ngx_http_ondemand_zone_ctx_t  *zctx;

    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    msg.kind = proto::verb::hello;
    msg.instance = std::string_view((char *) zctx->sh->instance);

    return ngx_http_ondemand_send(msg);
}


/*
 * A request needs the helper: do not let it wait out a backoff that has
 * grown while nobody needed the helper (a restarted helperd is back at once,
 * and the backoff may be longer than ondemand_helper_timeout).
 */

static void
ngx_http_ondemand_reconnect_now(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_ondemand_helper_conn.reconnect;

    if (!ev->timer_set
        || (ngx_msec_int_t) (ev->timer.key - ngx_current_msec)
           <= NGX_HTTP_ONDEMAND_BACKOFF_MIN)
    {
        return;
    }

    ngx_del_timer(ev);
    ngx_http_ondemand_helper_conn.backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;

    ngx_http_ondemand_connect(ev);
}


static void
ngx_http_ondemand_helper_close(const char *why)
{
    ngx_queue_t                    *q;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_main_conf_t  *omcf;

    h = &ngx_http_ondemand_helper_conn;

    if (!h->connected) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, h->log, 0,
                  "ondemand: lost the helper connection: %s", why);

    ngx_close_connection(h->connection);
    h->connection = NULL;
    h->connected = 0;
    h->down_logged = 1;
    h->in_len = 0;
    h->out_len = 0;

    for (q = ngx_queue_head(&h->busy_apps);
         q != ngx_queue_sentinel(&h->busy_apps);
         q = ngx_queue_next(q))
    {
        app = ngx_queue_data(q, ngx_http_ondemand_app_t, busy_link);
        app->asked = 0;
    }

    omcf = ngx_http_ondemand_cycle_conf();

    if (!ngx_queue_empty(&h->busy_apps) && !h->deadline.timer_set) {
        ngx_add_timer(&h->deadline, omcf->helper_timeout);
    }

    if (!h->reconnect.timer_set && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&h->reconnect, NGX_HTTP_ONDEMAND_BACKOFF_MIN);
    }
}


static void
ngx_http_ondemand_helper_read(ngx_event_t *rev)
{
    u_char                      *p, *start, *end;
    ssize_t                      n;
    ngx_connection_t            *c;
    ngx_http_ondemand_helper_t  *h;

    c = (ngx_connection_t *) rev->data;
    h = (ngx_http_ondemand_helper_t *) c->data;

    for ( ;; ) {
        n = c->recv(c, h->in + h->in_len,
                    proto::max_line_length + 1 - h->in_len);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_ondemand_helper_close(n == 0 ? "closed by helper"
                                                  : "read error");
            return;
        }

        h->in_len += n;
        start = h->in;
        end = h->in + h->in_len;

        while ((p = (u_char *) ngx_strlchr(start, end, '\n')) != NULL) {
            ngx_http_ondemand_helper_line(
                std::string_view((const char *) start, p - start));

            if (!h->connected) {
                return;
            }

            start = p + 1;
        }

        h->in_len = end - start;
        ngx_memmove(h->in, start, h->in_len);

        if (h->in_len > proto::max_line_length) {
            ngx_http_ondemand_helper_close("line too long from helper");
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_ondemand_helper_close("cannot watch for reading");
    }
}


static void
ngx_http_ondemand_helper_write(ngx_event_t *wev)
{
    ssize_t                      n;
    ngx_connection_t            *c;
    ngx_http_ondemand_helper_t  *h;

    c = (ngx_connection_t *) wev->data;
    h = &ngx_http_ondemand_helper_conn;

    while (h->out_len > 0) {
        n = c->send(c, h->out, h->out_len);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_ondemand_helper_close("write error");
            return;
        }

        h->out_len -= n;
        ngx_memmove(h->out, h->out + n, h->out_len);
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_ondemand_helper_close("cannot watch for writing");
    }
}


static void
ngx_http_ondemand_helper_line(std::string_view line)
{
    bool                            same_gen, applied, stopping, freezing,
                                    timeout, in_use;
    const char                     *code, *sep;
    proto::parse_result             pr;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    h = &ngx_http_ondemand_helper_conn;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "ondemand: from helper: %*s", line.size(), line.data());

    pr = proto::parse(line);

    if (!pr.ok) {
        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "ondemand: bad line from helper (%s): \"%*s\"",
                      pr.error, line.size(), line.data());
        return;
    }

    const proto::message &m = pr.msg;

    if (m.kind == proto::verb::error) {
        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "ondemand: helper refused a request: %*s",
                      m.text.size(), m.text.data());
        return;
    }

    if (m.kind != proto::verb::ready && m.kind != proto::verb::failed
        && m.kind != proto::verb::stopped && m.kind != proto::verb::down
        && m.kind != proto::verb::frozen)
    {
        return;
    }

    omcf = ngx_http_ondemand_cycle_conf();

    app = ngx_http_ondemand_find_app(omcf, (u_char *) m.app.data(),
                                     m.app.size());
    if (app == NULL) {
        /* an app of another configuration (e.g. before a reload) */
        return;
    }

    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    /* FAILED's code and details, for the error log: "code: details" */
    code = proto::failure_name(m.reason).data();
    sep = m.text.empty() ? "" : ": ";

    ngx_shmtx_lock(&zctx->shpool->mutex);

    same_gen = (m.gen == app->record->gen.load());
    stopping = (app->record->state.load() == ondemand::app_state::stopping);
    freezing = (app->record->state.load() == ondemand::app_state::freezing);
    in_use = false;

    switch (m.kind) {

    case proto::verb::ready:
        applied = ondemand::on_ready(*app->record, m.gen, ngx_current_msec);
        break;

    case proto::verb::failed:
        /* a failed stop leaves the unit in an unknown state: the next
         * request starts it, which is a no-op for a running unit;
         * a failed freeze leaves it running */
        in_use = (stopping || freezing) && m.reason == proto::failure::in_use;

        if (in_use) {
            applied = ondemand::on_stop_refused(*app->record, m.gen);

        } else if (stopping) {
            applied = ondemand::on_stopped(*app->record, m.gen);

        } else if (freezing) {
            applied = ondemand::on_freeze_failed(*app->record, m.gen);

        } else {
            applied = ondemand::on_failed(*app->record, m.gen);
        }

        break;

    case proto::verb::frozen:
        applied = ondemand::on_frozen(*app->record, m.gen);
        break;

    case proto::verb::stopped:
        applied = ondemand::on_stopped(*app->record, m.gen);
        break;

    default: /* down */
        applied = ondemand::on_down(*app->record);
        break;
    }

    ngx_shmtx_unlock(&zctx->shpool->mutex);

    if (m.kind == proto::verb::failed && in_use) {
        ngx_log_error(NGX_LOG_INFO, h->log, 0,
                      "ondemand: app \"%V\" not %s, another nginx uses it: "
                      "%s%s%*s", &app->name, stopping ? "stopped" : "frozen",
                      code, sep, m.text.size(), m.text.data());

    } else if (m.kind == proto::verb::failed && (stopping || freezing)) {
        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "ondemand: app \"%V\" failed to %s: %s%s%*s",
                      &app->name, stopping ? "stop" : "freeze",
                      code, sep, m.text.size(), m.text.data());

    } else if (m.kind == proto::verb::frozen && applied) {
        ngx_log_error(NGX_LOG_INFO, h->log, 0,
                      "ondemand: app \"%V\" frozen", &app->name);

    } else if (m.kind == proto::verb::failed && same_gen) {

        /* helperd gives up at the same start deadline as the requests */

        timeout = (m.reason == proto::failure::timeout);

        if (applied || app->nwaiters) {
            if (timeout) {
                ngx_log_error(NGX_LOG_ERR, h->log, 0,
                              "ondemand: app \"%V\" not ready within %M ms: "
                              "%s%s%*s", &app->name, app->start_timeout,
                              code, sep, m.text.size(), m.text.data());

            } else {
                ngx_log_error(NGX_LOG_ERR, h->log, 0,
                              "ondemand: app \"%V\" failed to start: %s%s%*s",
                              &app->name, code, sep, m.text.size(),
                              m.text.data());
            }
        }

        if (app->keep_warm && applied && !app->warm_retry.timer_set) {
            ngx_log_error(NGX_LOG_WARN, h->log, 0,
                          "ondemand: keep_warm app \"%V\" is started again "
                          "in %M ms", &app->name, app->warm_backoff);

            ngx_add_timer(&app->warm_retry, app->warm_backoff);

            app->warm_backoff = ngx_min(app->warm_backoff * 2,
                                        NGX_HTTP_ONDEMAND_WARM_RETRY_MAX);
        }

        if (timeout) {
            ngx_http_ondemand_wake_all(app, NGX_HTTP_GATEWAY_TIME_OUT,
                                       NGX_HTTP_ONDEMAND_TIMEOUT);

        } else {
            ngx_http_ondemand_wake_all(app, app->failed_status,
                                       NGX_HTTP_ONDEMAND_FAILED);
        }

        return;

    } else if (m.kind == proto::verb::stopped && applied) {
        ngx_log_error(NGX_LOG_INFO, h->log, 0,
                      "ondemand: app \"%V\" stopped", &app->name);

    } else if (m.kind == proto::verb::down && applied) {
        ngx_log_error(NGX_LOG_WARN, h->log, 0,
                      "ondemand: app \"%V\" went down", &app->name);

        if (app->keep_warm) {
            ngx_http_ondemand_warm_up();
        }
    }

    /* ready, or a change the waiters re-evaluate against the shared state */
    ngx_http_ondemand_wake_all(app, 0, NGX_HTTP_ONDEMAND_COLD);

    if (m.kind == proto::verb::ready) {
        /* from now on another nginx sharing the helper must not stop it */
        ngx_http_ondemand_report_use(app);

        if (applied) {
            app->warm_backoff = NGX_HTTP_ONDEMAND_WARM_RETRY_MIN;
        }
    }
}


/* the helper stayed unreachable for ondemand_helper_timeout */

static void
ngx_http_ondemand_helper_deadline(ngx_event_t *ev)
{
    ngx_queue_t                    *q;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    h = &ngx_http_ondemand_helper_conn;

    if (h->connected) {
        return;
    }

    omcf = ngx_http_ondemand_cycle_conf();
    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    while (!ngx_queue_empty(&h->busy_apps)) {
        q = ngx_queue_head(&h->busy_apps);
        app = ngx_queue_data(q, ngx_http_ondemand_app_t, busy_link);

        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "ondemand: helper \"%V\" unreachable for %M ms, "
                      "failing %ui held request(s) for app \"%V\"",
                      &omcf->helper->name, omcf->helper_timeout,
                      app->nwaiters, &app->name);

        /* a start this worker owns cannot proceed: let the next one retry */

        ngx_shmtx_lock(&zctx->shpool->mutex);

        (void) ondemand::abandon_start(*app->record, ngx_pid);

        ngx_shmtx_unlock(&zctx->shpool->mutex);

        ngx_http_ondemand_wake_all(app, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   NGX_HTTP_ONDEMAND_UNAVAILABLE);
    }
}


/* a stop this worker began may not have reached a helper that went away */

static void
ngx_http_ondemand_resend_stops(void)
{
    ngx_uint_t                      i;
    ondemand::app_state             state;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = ngx_http_ondemand_cycle_conf();
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        state = app->record->state.load();

        if ((state != ondemand::app_state::stopping
             && state != ondemand::app_state::freezing)
            || app->record->starter_pid.load() != ngx_pid)
        {
            continue;
        }

        ngx_http_ondemand_send_stop(app);

        if (!ngx_http_ondemand_helper_conn.connected) {
            return;
        }
    }
}


/* keep_warm apps: started when nginx starts, and again whenever they go down */

static void
ngx_http_ondemand_warm_up(void)
{
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;
    ondemand::request_action        action;

    omcf = ngx_http_ondemand_cycle_conf();
    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        if (!app->keep_warm
            || app->record->state.load() != ondemand::app_state::cold)
        {
            continue;
        }

        ngx_shmtx_lock(&zctx->shpool->mutex);

        action = ondemand::request_action::hold;

        if (app->record->state.load() == ondemand::app_state::cold) {
            action = ondemand::on_request(*app->record, ngx_pid,
                                          ngx_current_msec,
                                          app->start_timeout);
        }

        ngx_shmtx_unlock(&zctx->shpool->mutex);

        if (action == ondemand::request_action::hold_and_start) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "ondemand: starting keep_warm app \"%V\"",
                          &app->name);

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

    if (ngx_http_ondemand_helper_conn.connected) {
        ngx_http_ondemand_warm_up();
    }
}


/* after (re)connecting: ask again for every app with held requests */

static void
ngx_http_ondemand_resync(void)
{
    ngx_queue_t                 *q, *next;
    ngx_http_ondemand_app_t     *app;
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    ngx_http_ondemand_resend_stops();
    ngx_http_ondemand_warm_up();

    for (q = ngx_queue_head(&h->busy_apps);
         q != ngx_queue_sentinel(&h->busy_apps);
         q = next)
    {
        next = ngx_queue_next(q);
        app = ngx_queue_data(q, ngx_http_ondemand_app_t, busy_link);

        switch (app->record->state.load()) {

        case ondemand::app_state::starting:
            /* helperd coalesces STARTs: safe if another worker sends one too */
            ngx_http_ondemand_ask(app,
                                  ondemand::request_action::hold_and_start);
            break;

        case ondemand::app_state::stopping:
            break;

        default:
            ngx_http_ondemand_wake_all(app, 0, NGX_HTTP_ONDEMAND_COLD);
            break;
        }

        if (!h->connected) {
            return;
        }
    }
}


/* the idle scan: every worker runs it; the zone mutex elects one stopper */

static void
ngx_http_ondemand_idle_scan(ngx_event_t *ev)
{
    bool                            stop;
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    h = &ngx_http_ondemand_helper_conn;

    omcf = ngx_http_ondemand_cycle_conf();
    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    /* a stop needs the helper: without it, apps stay up rather than half-stopped */

    for (i = 0; h->connected && i < omcf->apps.nelts; i++) {
        app = apps[i];

        ngx_http_ondemand_report_use(app);

        if (app->record->state.load() == ondemand::app_state::frozen) {
            ngx_shmtx_lock(&zctx->shpool->mutex);
            stop = ondemand::begin_frozen_stop(*app->record, ngx_pid,
                                               ngx_current_msec,
                                               app->frozen_timeout,
                                               app->stop_timeout);
            ngx_shmtx_unlock(&zctx->shpool->mutex);

            if (stop) {
                ngx_log_error(NGX_LOG_INFO, h->log, 0,
                              "ondemand: app \"%V\" frozen for %M ms, "
                              "stopping", &app->name, app->frozen_timeout);

                ngx_http_ondemand_send_stop(app);
            }

            continue;
        }

        if (!ondemand::looks_idle(*app->record, ngx_current_msec,
                                  app->idle_timeout))
        {
            continue;
        }

        ngx_shmtx_lock(&zctx->shpool->mutex);

        if (app->freeze) {
            stop = ondemand::begin_freeze(*app->record, ngx_pid,
                                          ngx_current_msec, app->idle_timeout,
                                          app->stop_timeout);
        } else {
            stop = ondemand::begin_stop(*app->record, ngx_pid,
                                        ngx_current_msec, app->idle_timeout,
                                        app->stop_timeout);
        }

        ngx_shmtx_unlock(&zctx->shpool->mutex);

        if (!stop) {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, h->log, 0,
                      "ondemand: app \"%V\" idle for %M ms, %s",
                      &app->name, app->idle_timeout,
                      app->freeze ? "freezing" : "stopping");

        ngx_http_ondemand_send_stop(app);
    }

    ngx_add_timer(ev, omcf->idle_interval);
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

    if (last == app->reported_active && app->record->in_flight.load() == 0) {
        return;
    }

    lease = ondemand::use_lease(*app->record, ngx_current_msec,
                                app->idle_timeout);
    if (lease == 0) {
        return;
    }

    msg.kind = proto::verb::use;
    msg.app = ngx_http_ondemand_sv(&app->name);
    msg.gen = app->record->gen.load();
    msg.lease_ms = lease;

    if (ngx_http_ondemand_send(msg) == NGX_OK) {
        app->reported_active = last;
    }
}


/* variables */

static ngx_int_t
ngx_http_ondemand_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r->main, ngx_http_ondemand_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = &ngx_http_ondemand_outcomes[ctx->outcome];

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_wait_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r->main, ngx_http_ondemand_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = (u_char *) ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%M", ctx->wait_time) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_ondemand_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* upstream peer of released requests */

static ngx_int_t
ngx_http_ondemand_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_ondemand_app_t   *app;
    ngx_http_ondemand_ctx_t   *ctx;
    ngx_http_ondemand_peer_t  *pd;

    app = (ngx_http_ondemand_app_t *)
              ngx_http_conf_upstream_srv_conf(us, ngx_http_ondemand_module);

    if (app->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r->main, ngx_http_ondemand_module);

    /*
     * Warm requests connect the stock way (herds come from releases only);
     * only the balancer's free is wrapped, to notice an app that is gone.
     * It is the same function for every request of an upstream.
     */

    if (ctx == NULL || ctx == &ngx_http_ondemand_warm_ctx) {
        app->original_free = r->upstream->peer.free;
        r->upstream->peer.free = ngx_http_ondemand_free_warm_peer;
        return NGX_OK;
    }

    pd = (ngx_http_ondemand_peer_t *)
             ngx_pcalloc(r->pool, sizeof(ngx_http_ondemand_peer_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ondemand_peer_cleanup;
    cln->data = pd;

    pd->data = r->upstream->peer.data;
    pd->original_get = r->upstream->peer.get;
    pd->original_free = r->upstream->peer.free;
    pd->peer = &r->upstream->peer;
    pd->app = app;

    pd->retry.handler = ngx_http_ondemand_connect_retry;
    pd->retry.data = pd;
    pd->retry.log = r->connection->log;

    r->upstream->peer.data = pd;
    r->upstream->peer.get = ngx_http_ondemand_get_peer;
    r->upstream->peer.free = ngx_http_ondemand_free_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    int                rc;
    ngx_int_t          get;
    ngx_err_t          err;
    ngx_socket_t       s;
    ngx_connection_t  *c;

    get = pd->original_get(pc, pd->data);

    if (get != NGX_OK || pc->sockaddr->sa_family != AF_UNIX) {
        /* a cached keepalive connection, or an error */
        return get;
    }

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, pc->log);
    if (c == NULL) {
        ngx_close_socket(s);
        return NGX_ERROR;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    c->type = SOCK_STREAM;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;
    c->sendfile = 1;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    c->log_error = pc->log_error;
    c->read->log = pc->log;
    c->write->log = pc->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    pc->connection = c;

    rc = connect(s, pc->sockaddr, pc->socklen);
    err = ngx_socket_errno;

    if (rc == 0) {
        goto connected;
    }

    if (err == NGX_EAGAIN) {
        /*
         * the app's listen backlog is full: retry shortly; the upstream's
         * connect timeout (on c->write) still bounds the wait
         */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "ondemand: backlog of app \"%V\" full, retrying",
                       &pd->app->name);

        pd->backoff = 1;
        ngx_add_timer(&pd->retry, pd->backoff);

        return NGX_AGAIN;
    }

    ngx_log_error(NGX_LOG_ERR, pc->log, err, "connect() to %V failed",
                  pc->name);

    ngx_close_connection(c);
    pc->connection = NULL;

    return NGX_DECLINED;

connected:

    if (ngx_add_conn && ngx_add_conn(c) == NGX_ERROR) {
        ngx_close_connection(c);
        pc->connection = NULL;
        return NGX_ERROR;
    }

    c->write->ready = 1;

    return NGX_DONE;
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

    if (connect(c->fd, pc->sockaddr, pc->socklen) == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN) {
            pd->backoff = ngx_min(pd->backoff * 2, 32);
            ngx_add_timer(&pd->retry, pd->backoff);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, pc->log, err, "connect() to %V failed",
                      pc->name);

        /* the write handler's send() on the unconnected socket fails it */

        ngx_post_event(c->write, &ngx_posted_events);
        return;
    }

    if (ngx_add_conn && ngx_add_conn(c) == NGX_ERROR) {
        ngx_post_event(c->write, &ngx_posted_events);
        return;
    }

    c->write->ready = 1;
    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_ondemand_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    if (pd->retry.timer_set) {
        ngx_del_timer(&pd->retry);
    }

    pd->original_free(pc, pd->data, state);
}


/*
 * A warm request that could not reach its app (the unit stopped behind
 * ondemand's back, e.g. while helperd was down, so no DOWN came): the app is
 * made cold, so that the next request asks helperd, which starts it, or
 * answers at once if it runs.
 */

static void
ngx_http_ondemand_free_warm_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    bool                            down;
    ngx_http_upstream_t            *u;
    ngx_http_ondemand_app_t        *app;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    u = (ngx_http_upstream_t *)
            ((u_char *) pc - offsetof(ngx_http_upstream_t, peer));
    app = (ngx_http_ondemand_app_t *)
              ngx_http_conf_upstream_srv_conf(u->upstream,
                                              ngx_http_ondemand_module);

    app->original_free(pc, data, state);

    if (!(state & NGX_PEER_FAILED) || pc->connection != NULL
        || app->record->state.load() != ondemand::app_state::ready)
    {
        return;
    }

    omcf = ngx_http_ondemand_cycle_conf();
    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    ngx_shmtx_lock(&zctx->shpool->mutex);
    down = ondemand::on_down(*app->record);
    ngx_shmtx_unlock(&zctx->shpool->mutex);

    if (down) {
        ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                      "ondemand: app \"%V\" did not accept a connection, "
                      "it will be started on the next request", &app->name);
    }
}


static void
ngx_http_ondemand_peer_cleanup(void *data)
{
    ngx_http_ondemand_peer_t *pd = (ngx_http_ondemand_peer_t *) data;

    if (pd->retry.timer_set) {
        ngx_del_timer(&pd->retry);
    }
}


/* shared memory */

static ngx_int_t
ngx_http_ondemand_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                          size;
    uint32_t                        hash;
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t       **apps, *app;
    ngx_http_ondemand_node_t       *node;
    ngx_http_ondemand_zone_ctx_t   *ctx, *octx;
    ngx_http_ondemand_main_conf_t  *omcf;

    ctx = (ngx_http_ondemand_zone_ctx_t *) shm_zone->data;
    octx = (ngx_http_ondemand_zone_ctx_t *) data;
    omcf = ctx->main_conf;

    if (octx) {
        /* a reload with the same zone: app states carry over by name */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

    } else {
        ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

        ctx->sh = (ngx_http_ondemand_shctx_t *)
                      ngx_slab_alloc(ctx->shpool,
                                     sizeof(ngx_http_ondemand_shctx_t));
        if (ctx->sh == NULL) {
            return NGX_ERROR;
        }

        ctx->shpool->data = ctx->sh;

        ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                        ngx_str_rbtree_insert_value);

        /*
         * one name for all workers, kept across reloads with the zone;
         * the pid and time tell nginx instances on one host apart
         */
        ngx_sprintf(ctx->sh->instance, "nginx-%P-%xT%Z", ngx_pid, ngx_time());

        size = sizeof(" in ondemand zone \"\"") + shm_zone->shm.name.len;

        ctx->shpool->log_ctx = (u_char *) ngx_slab_alloc(ctx->shpool, size);
        if (ctx->shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(ctx->shpool->log_ctx, " in ondemand zone \"%V\"%Z",
                    &shm_zone->shm.name);

        ctx->shpool->log_nomem = 0;
    }

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];
        hash = ngx_crc32_short(app->name.data, app->name.len);

        node = (ngx_http_ondemand_node_t *)
                   ngx_str_rbtree_lookup(&ctx->sh->rbtree, &app->name, hash);

        if (node == NULL) {
            node = (ngx_http_ondemand_node_t *)
                ngx_slab_alloc(ctx->shpool,
                               sizeof(ngx_http_ondemand_node_t)
                               + app->name.len);
            if (node == NULL) {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "ondemand_zone \"%V\" is too small for %ui apps",
                              &shm_zone->shm.name, omcf->apps.nelts);
                return NGX_ERROR;
            }

            new (&node->record) ondemand::app_record();

            ngx_memcpy(node->name, app->name.data, app->name.len);
            node->sn.str.len = app->name.len;
            node->sn.str.data = node->name;
            node->sn.node.key = hash;

            ngx_rbtree_insert(&ctx->sh->rbtree, &node->sn.node);
        }

        app->record = &node->record;
    }

    return NGX_OK;
}


/* configuration */

static void *
ngx_http_ondemand_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ondemand_main_conf_t  *conf;

    conf = (ngx_http_ondemand_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_ondemand_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->helper_timeout = NGX_CONF_UNSET_MSEC;
    conf->max_running = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&conf->apps, cf->pool, 4,
                       sizeof(ngx_http_ondemand_app_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return conf;
}


static char *
ngx_http_ondemand_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ondemand_main_conf_t *omcf = (ngx_http_ondemand_main_conf_t *) conf;

    ngx_conf_init_msec_value(omcf->helper_timeout, 5000);
    ngx_conf_init_uint_value(omcf->max_running, 0);

    return NGX_CONF_OK;
}


static void *
ngx_http_ondemand_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_ondemand_app_t  *conf;

    conf = (ngx_http_ondemand_app_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_ondemand_app_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->unit = { 0, NULL };
     *     conf->socket = { 0, NULL };
     *     conf->enabled = 0;
     */

    ngx_queue_init(&conf->waiters);

    return conf;
}


static void *
ngx_http_ondemand_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ondemand_loc_conf_t  *conf;

    conf = (ngx_http_ondemand_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_ondemand_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->app = (ngx_http_complex_value_t *) NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_ondemand_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ondemand_loc_conf_t *prev = (ngx_http_ondemand_loc_conf_t *) parent;
    ngx_http_ondemand_loc_conf_t *conf = (ngx_http_ondemand_loc_conf_t *) child;

    ngx_conf_merge_ptr_value(conf->app, prev->app, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_ondemand_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_main_conf_t *omcf = (ngx_http_ondemand_main_conf_t *) conf;

    u_char                        *p;
    ssize_t                        size;
    ngx_str_t                     *value, name, s;
    ngx_http_ondemand_zone_ctx_t  *ctx;

    if (omcf->shm_zone) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    p = (u_char *) ngx_strlchr(value[1].data, value[1].data + value[1].len,
                               ':');
    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid ondemand_zone \"%V\", expected name:size",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid ondemand_zone size \"%V\"", &s);
        return (char *) NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ondemand_zone \"%V\" is too small", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    ctx = (ngx_http_ondemand_zone_ctx_t *)
              ngx_pcalloc(cf->pool, sizeof(ngx_http_ondemand_zone_ctx_t));
    if (ctx == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ctx->main_conf = omcf;

    omcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_ondemand_module);
    if (omcf->shm_zone == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    if (omcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ondemand_zone \"%V\" is already used", &name);
        return (char *) NGX_CONF_ERROR;
    }

    omcf->shm_zone->init = ngx_http_ondemand_init_zone;
    omcf->shm_zone->data = ctx;

    return NGX_CONF_OK;
}


static char *
ngx_http_ondemand_helper(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_main_conf_t *omcf = (ngx_http_ondemand_main_conf_t *) conf;

    ngx_url_t   u;
    ngx_str_t  *value;

    if (omcf->helper) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strncmp(value[1].data, "unix:", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ondemand_helper \"%V\" must be a unix: socket",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid ondemand_helper \"%V\": %s",
                           &value[1], u.err ? u.err : "bad address");
        return (char *) NGX_CONF_ERROR;
    }

    omcf->helper = u.addrs;

    return NGX_CONF_OK;
}


/* the numeric parameters of "ondemand" */

#define NGX_HTTP_ONDEMAND_TIME           1
#define NGX_HTTP_ONDEMAND_POSITIVE_TIME  2
#define NGX_HTTP_ONDEMAND_POSITIVE_NUM   3

typedef struct {
    ngx_str_t                      name;          /* with its "=" */
    ngx_uint_t                     type;
    size_t                         offset;
} ngx_http_ondemand_param_t;


static ngx_http_ondemand_param_t  ngx_http_ondemand_params[] = {

    { ngx_string("start_timeout="), NGX_HTTP_ONDEMAND_POSITIVE_TIME,
      offsetof(ngx_http_ondemand_app_t, start_timeout) },

    { ngx_string("idle_timeout="), NGX_HTTP_ONDEMAND_TIME,
      offsetof(ngx_http_ondemand_app_t, idle_timeout) },

    { ngx_string("stop_timeout="), NGX_HTTP_ONDEMAND_POSITIVE_TIME,
      offsetof(ngx_http_ondemand_app_t, stop_timeout) },

    { ngx_string("frozen_timeout="), NGX_HTTP_ONDEMAND_TIME,
      offsetof(ngx_http_ondemand_app_t, frozen_timeout) },

    { ngx_string("queue="), NGX_HTTP_ONDEMAND_POSITIVE_NUM,
      offsetof(ngx_http_ondemand_app_t, queue) },

    { ngx_string("release="), NGX_HTTP_ONDEMAND_POSITIVE_NUM,
      offsetof(ngx_http_ondemand_app_t, release) },

    { ngx_null_string, 0, 0 }
};


/* NGX_OK: set; NGX_ERROR: a known parameter with a bad value; NGX_DECLINED: unknown */

static ngx_int_t
ngx_http_ondemand_set_param(ngx_http_ondemand_app_t *app, ngx_str_t *arg)
{
    ngx_int_t                   n;
    ngx_str_t                   v;
    ngx_msec_t                  t;
    ngx_http_ondemand_param_t  *p;

    for (p = ngx_http_ondemand_params; p->name.len; p++) {

        if (arg->len < p->name.len
            || ngx_strncmp(arg->data, p->name.data, p->name.len) != 0)
        {
            continue;
        }

        v.data = arg->data + p->name.len;
        v.len = arg->len - p->name.len;

        if (p->type == NGX_HTTP_ONDEMAND_POSITIVE_NUM) {
            n = ngx_atoi(v.data, v.len);
            if (n == NGX_ERROR || n == 0) {
                return NGX_ERROR;
            }

            *(ngx_uint_t *) ((u_char *) app + p->offset) = n;
            return NGX_OK;
        }

        t = ngx_parse_time(&v, 0);
        if (t == (ngx_msec_t) NGX_ERROR
            || (t == 0 && p->type == NGX_HTTP_ONDEMAND_POSITIVE_TIME))
        {
            return NGX_ERROR;
        }

        *(ngx_msec_t *) ((u_char *) app + p->offset) = t;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static char *
ngx_http_ondemand(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_app_t *app = (ngx_http_ondemand_app_t *) conf;

    ngx_int_t                       n, rc;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t       **slot;
    ngx_http_upstream_srv_conf_t   *uscf;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (app->enabled) {
        return (char *) "is duplicate";
    }

    uscf = (ngx_http_upstream_srv_conf_t *)
               ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (!proto::valid_app_name(ngx_http_ondemand_sv(&uscf->host))) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream name \"%V\" is not a valid ondemand app "
                           "name (1-%uz of A-Z a-z 0-9 _ . -)",
                           &uscf->host, proto::max_app_name_length);
        return (char *) NGX_CONF_ERROR;
    }

    app->name = uscf->host;
    ngx_str_set(&app->ready, "connect");
    app->start_timeout = 30000;
    app->idle_timeout = 300000;
    app->stop_timeout = 30000;
    app->frozen_timeout = 3600000;
    app->queue = 1000;
    app->release = 32;
    app->failed_status = NGX_HTTP_BAD_GATEWAY;

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "unit=", 5) == 0) {
            app->unit.data = value[i].data + 5;
            app->unit.len = value[i].len - 5;

            if (!proto::valid_unit_name(ngx_http_ondemand_sv(&app->unit))) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid systemd unit name \"%V\"",
                                   &app->unit);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ready=", 6) == 0) {
            app->ready.data = value[i].data + 6;
            app->ready.len = value[i].len - 6;

            if (!proto::valid_ready_mode(ngx_http_ondemand_sv(&app->ready))) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ready mode \"%V\", expected "
                                   "connect, notify or http:/path",
                                   &app->ready);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "socket=", 7) == 0) {
            app->socket.data = value[i].data + 7;
            app->socket.len = value[i].len - 7;

            if (!proto::valid_socket_path(ngx_http_ondemand_sv(&app->socket))) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid socket path \"%V\"", &app->socket);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "keep_warm") == 0) {
            app->keep_warm = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "freeze") == 0) {
            app->freeze = 1;
            continue;
        }

        rc = ngx_http_ondemand_set_param(app, &value[i]);

        if (rc == NGX_OK) {
            continue;
        }

        if (rc == NGX_ERROR) {
            goto invalid;
        }

        if (ngx_strncmp(value[i].data, "failed_status=", 14) == 0) {
            n = ngx_atoi(value[i].data + 14, value[i].len - 14);
            if (n != NGX_HTTP_BAD_GATEWAY && n != NGX_HTTP_SERVICE_UNAVAILABLE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected 502 or 503",
                                   &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            app->failed_status = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    if (app->unit.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ondemand\" in upstream \"%V\" needs unit=",
                           &uscf->host);
        return (char *) NGX_CONF_ERROR;
    }

    if (app->keep_warm) {
        app->idle_timeout = 0;
    }

    app->enabled = 1;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_ondemand_module);

    slot = (ngx_http_ondemand_app_t **) ngx_array_push(&omcf->apps);
    if (slot == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *slot = app;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\"", &value[i]);

    return (char *) NGX_CONF_ERROR;
}


static char *
ngx_http_ondemand_app(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_loc_conf_t *olcf = (ngx_http_ondemand_loc_conf_t *) conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (olcf->app != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        olcf->app = NULL;
        return NGX_CONF_OK;
    }

    olcf->app = (ngx_http_complex_value_t *)
                    ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (olcf->app == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = olcf->app;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the app's socket: socket= or the upstream's only unix: server */

static ngx_int_t
ngx_http_ondemand_app_socket(ngx_conf_t *cf, ngx_http_ondemand_app_t *app,
    ngx_http_upstream_srv_conf_t *uscf)
{
    size_t                         len;
    struct sockaddr_un            *sun;
    ngx_http_upstream_server_t    *server;

    if (app->socket.len) {
        return NGX_OK;
    }

    if (uscf->servers == NULL || uscf->servers->nelts != 1) {
        goto fail;
    }

    server = (ngx_http_upstream_server_t *) uscf->servers->elts;

    if (server->naddrs != 1
        || server->addrs[0].sockaddr->sa_family != AF_UNIX)
    {
        goto fail;
    }

    sun = (struct sockaddr_un *) server->addrs[0].sockaddr;
    len = ngx_strnlen((u_char *) sun->sun_path, sizeof(sun->sun_path));

    app->socket.data = (u_char *) ngx_pnalloc(cf->pool, len);
    if (app->socket.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(app->socket.data, sun->sun_path, len);
    app->socket.len = len;

    if (!proto::valid_socket_path(ngx_http_ondemand_sv(&app->socket))) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "ondemand app \"%V\": invalid socket path \"%V\"",
                      &app->name, &app->socket);
        return NGX_ERROR;
    }

    return NGX_OK;

fail:

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "ondemand app \"%V\": the upstream needs exactly one "
                  "\"server unix:...\", or set socket= on \"ondemand\"",
                  &app->name);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_ondemand_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                      i, j;
    ngx_hash_init_t                 hash;
    ngx_hash_keys_arrays_t          keys;
    ngx_http_handler_pt            *h;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_ondemand_module);

    if (omcf->apps.nelts == 0) {
        return NGX_OK;
    }

    if (omcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"ondemand\" is used but \"ondemand_zone\" is not set");
        return NGX_ERROR;
    }

    if (omcf->helper == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"ondemand\" is used but \"ondemand_helper\" is not "
                      "set");
        return NGX_ERROR;
    }

    umcf = (ngx_http_upstream_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = (ngx_http_upstream_srv_conf_t **) umcf->upstreams.elts;
    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        for (j = 0; j < umcf->upstreams.nelts; j++) {
            if (uscfp[j]->srv_conf
                && uscfp[j]->srv_conf[ngx_http_ondemand_module.ctx_index]
                   == app)
            {
                break;
            }
        }

        if (j == umcf->upstreams.nelts
            || ngx_http_ondemand_app_socket(cf, app, uscfp[j]) != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* the balancer (and keepalive) are set up by now: wrap them */

        app->original_init_peer = uscfp[j]->peer.init;
        uscfp[j]->peer.init = ngx_http_ondemand_init_peer;

        /* scan often enough to stop an app within ~1 s of its idle timeout */

        if (app->idle_timeout) {
            ngx_msec_t interval = ngx_max(ngx_min(app->idle_timeout / 4, 1000),
                                          50);

            if (app->freeze && app->frozen_timeout) {
                interval = ngx_max(ngx_min(interval, app->frozen_timeout / 4),
                                   50);
            }

            if (omcf->idle_interval == 0 || interval < omcf->idle_interval) {
                omcf->idle_interval = interval;
            }
        }
    }

    /* app name -> app, for ondemand_app $variable and helper replies */

    keys.pool = cf->pool;
    keys.temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(&keys, NGX_HASH_LARGE) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < omcf->apps.nelts; i++) {
        ngx_int_t rc = ngx_hash_add_key(&keys, &apps[i]->name, apps[i], 0);

        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "duplicate ondemand app \"%V\"", &apps[i]->name);
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    hash.hash = &omcf->apps_hash;
    hash.key = ngx_hash_key_lc;
    hash.max_size = 65536;
    hash.bucket_size = ngx_align(128, ngx_cacheline_size);
    hash.name = (char *) "ondemand_apps_hash";
    hash.pool = cf->pool;
    hash.temp_pool = NULL;

    if (ngx_hash_init(&hash, (ngx_hash_key_t *) keys.keys.elts,
                      keys.keys.nelts)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = (ngx_http_handler_pt *)
            ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ondemand_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_ondemand_module);

    if (omcf == NULL || omcf->apps.nelts == 0) {
        return NGX_OK;
    }

    h = &ngx_http_ondemand_helper_conn;

    h->log = cycle->log;
    h->backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;
    ngx_queue_init(&h->busy_apps);

    h->in = (u_char *) ngx_alloc(proto::max_line_length + 1, cycle->log);
    h->out_size = 4 * (proto::max_line_length + 1);
    h->out = (u_char *) ngx_alloc(h->out_size, cycle->log);

    if (h->in == NULL || h->out == NULL) {
        return NGX_ERROR;
    }

    h->reconnect.handler = ngx_http_ondemand_connect;
    h->reconnect.log = cycle->log;
    h->reconnect.data = h;
    h->reconnect.cancelable = 1;

    h->deadline.handler = ngx_http_ondemand_helper_deadline;
    h->deadline.log = cycle->log;
    h->deadline.data = h;

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];
        app->warm_retry.handler = ngx_http_ondemand_warm_retry;
        app->warm_retry.log = cycle->log;
        app->warm_retry.data = app;
        app->warm_retry.cancelable = 1;
        app->warm_backoff = NGX_HTTP_ONDEMAND_WARM_RETRY_MIN;
    }

    if (omcf->idle_interval) {
        h->idle.handler = ngx_http_ondemand_idle_scan;
        h->idle.log = cycle->log;
        h->idle.data = h;
        h->idle.cancelable = 1;

        ngx_add_timer(&h->idle, omcf->idle_interval);
    }

    /* a persistent connection, made up front so that a cold start pays no connect */

    ngx_http_ondemand_connect(&h->reconnect);

    return NGX_OK;
}


static void
ngx_http_ondemand_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    if (h->connection) {
        ngx_close_connection(h->connection);
        h->connection = NULL;
        h->connected = 0;
    }
}
