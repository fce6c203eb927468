
/*
 * The private header of ngx_http_ondemand_module: the configuration, an
 * app's parts, the request context, and the functions the module's files
 * call in one another.  The files call each other in one direction only
 * (docs/design.md, "Code map"):
 *
 *   module -> upstream -> handler -> lifecycle -> upkeep -> queue, helper,
 *   zone   (and upstream_conf, variables: called by module and upstream)
 *
 * (each may also call any file further down: scripts/module-calls checks).
 * helper calls upward only through the callbacks that init_process sets.
 */


#ifndef _NGX_HTTP_ONDEMAND_H_INCLUDED_
#define _NGX_HTTP_ONDEMAND_H_INCLUDED_


extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <string_view>

#include "ondemand_protocol.h"
#include "ondemand_app_state.h"
#include "ondemand_policy.h"


namespace proto = ondemand::proto;


#define NGX_HTTP_ONDEMAND_INSTANCE_LEN     32
#define NGX_HTTP_ONDEMAND_WARM_RETRY_MIN   1000
#define NGX_HTTP_ONDEMAND_WARM_RETRY_MAX   60000
#define NGX_HTTP_ONDEMAND_RETRY_AFTER      "5"
#define NGX_HTTP_ONDEMAND_STOP_WATCH       10
/* how long an orphan's STOP may take before it is sent again */
#define NGX_HTTP_ONDEMAND_ORPHAN_STOP      30000
/* the upkeep's interval when no app has an idle timeout */
#define NGX_HTTP_ONDEMAND_UPKEEP           1000
/* reported_active after a lost connection: the next USE report is sent */
#define NGX_HTTP_ONDEMAND_USE_RESEND       ((uint64_t) -1)


extern "C" {
extern ngx_module_t  ngx_http_ondemand_module;
}


typedef struct ngx_http_ondemand_main_conf_s  ngx_http_ondemand_main_conf_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    /* records of apps that no configuration names any more */
    ngx_queue_t                    orphans;
    /* counted at each load of the configuration into the zone */
    uint64_t                       config;
    /* which worker process counts in which slot of the records */
    ondemand::worker_slot_table    slots;
    /* sent in HELLO by every worker: helperd's name for this nginx */
    u_char                         instance[NGX_HTTP_ONDEMAND_INSTANCE_LEN];
} ngx_http_ondemand_shctx_t;


typedef struct {
    ngx_http_ondemand_shctx_t     *sh;
    ngx_slab_pool_t               *shpool;
    ngx_http_ondemand_main_conf_t *main_conf;
    uint64_t                       config;        /* this cycle's */
} ngx_http_ondemand_zone_ctx_t;


/* an app's configuration: set by "ondemand", read-only afterwards */
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
    unsigned                       enabled:1;
    unsigned                       keep_warm:1;
    unsigned                       freeze:1;
} ngx_http_ondemand_app_conf_t;


/* an app in this worker: its held requests and what it asked helperd */
typedef struct {
    ngx_queue_t                    waiters;
    ngx_uint_t                     nwaiters;
    ngx_queue_t                    busy_link;     /* in the busy list */
    ngx_event_t                    release_ev;    /* next batch */
    ngx_event_t                    stop_watch;    /* held while stopping */
    ngx_event_t                    warm_retry;    /* keep_warm after a failure */
    ngx_msec_t                     warm_backoff;
    uint64_t                       asked_gen;     /* START/WAIT sent for it */
    uint64_t                       reported_active; /* sent in USE */
    unsigned                       asked:1;
} ngx_http_ondemand_app_worker_t;


/* the balancer functions the app's upstream wraps */
typedef struct {
    ngx_http_upstream_init_peer_pt init_peer;
    ngx_event_free_peer_pt         free;
} ngx_http_ondemand_app_balancer_t;


/* one per upstream{} block; an app when it has an "ondemand" directive */
typedef struct {
    ngx_http_ondemand_app_conf_t      conf;
    ngx_http_ondemand_app_worker_t    worker;
    ngx_http_ondemand_app_balancer_t  balancer;
    ondemand::app_record             *record;   /* shared, in the zone */
} ngx_http_ondemand_app_t;


/* an "ondemand_app" without variables, checked at postconfiguration */
typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      file;
    ngx_uint_t                     line;
} ngx_http_ondemand_static_app_t;


struct ngx_http_ondemand_main_conf_s {
    ngx_shm_zone_t                *shm_zone;
    ngx_addr_t                    *helper;
    ngx_str_t                      helper_key;    /* key=FILE; empty: none */
    ngx_msec_t                     helper_timeout;
    ngx_array_t                    apps;          /* ngx_http_ondemand_app_t * */
    ngx_hash_t                     apps_hash;
    ngx_msec_t                     idle_interval;  /* 0: no app stops */
    ngx_uint_t                     max_running;    /* 0: no cap */
    size_t                         max_memory;     /* 0: no budget */
    size_t                         memory_expect;  /* expect=: a new app's size */
    ngx_array_t                    static_apps;    /* static_app_t */
};


typedef struct {
    ngx_http_complex_value_t      *app;
    ngx_http_complex_value_t      *wake;          /* ondemand_wake */
    ngx_msec_t                     wait_page;     /* 0: off */
    ngx_str_t                      wait_page_html; /* empty: the built-in */
} ngx_http_ondemand_loc_conf_t;


/*
 * what happened to a request, for $ondemand_status and ondemand_metrics
 * (ondemand_app_state.h)
 */
typedef ondemand::request_outcome  ngx_http_ondemand_outcome_e;

#define NGX_HTTP_ONDEMAND_WARM         ondemand::request_outcome::warm
#define NGX_HTTP_ONDEMAND_COLD         ondemand::request_outcome::cold
#define NGX_HTTP_ONDEMAND_QUEUE_FULL   ondemand::request_outcome::queue_full
#define NGX_HTTP_ONDEMAND_MAX_RUNNING  ondemand::request_outcome::max_running
#define NGX_HTTP_ONDEMAND_TIMEOUT      ondemand::request_outcome::timeout
#define NGX_HTTP_ONDEMAND_FAILED       ondemand::request_outcome::failed
#define NGX_HTTP_ONDEMAND_UNAVAILABLE  ondemand::request_outcome::unavailable
#define NGX_HTTP_ONDEMAND_ABANDONED    ondemand::request_outcome::abandoned
#define NGX_HTTP_ONDEMAND_NOT_WOKEN    ondemand::request_outcome::not_woken
#define NGX_HTTP_ONDEMAND_WAIT_PAGE    ondemand::request_outcome::wait_page
#define NGX_HTTP_ONDEMAND_MAX_MEMORY   ondemand::request_outcome::max_memory

/* ctx->status of a held request that is to get the waiting page */
#define NGX_HTTP_ONDEMAND_PAGE_DUE     1


typedef struct {
    ngx_http_ondemand_app_t       *app;
    ngx_http_request_t            *request;
    ngx_msec_t                     wait_time;
    ngx_http_ondemand_outcome_e    outcome;
    ngx_queue_t                    queue;
    ngx_msec_t                     held_since;
    ngx_int_t                      status;        /* to finalize with */
    /* held: the start timeout's timer, and posted to wake the request */
    ngx_event_t                    wake;
    ngx_http_posted_request_t      posted;
    unsigned                       queued:1;
    unsigned                       no_wake:1;     /* ondemand_wake said no */
    unsigned                       page:1;        /* may get the waiting page */
} ngx_http_ondemand_ctx_t;


/* the apps a cold start stops to make room (ngx_http_ondemand_make_room) */
typedef struct {
    ngx_http_ondemand_app_t       *app[ondemand::eviction_choice::max_victims];
    ngx_uint_t                     n;
} ngx_http_ondemand_victims_t;


/* what the helper connection tells the layer above it */
typedef struct {
    void                         (*on_message)(const proto::message &msg);
    /* connected and HELLO sent */
    void                         (*on_connected)(void);
    /* the connection was lost (lost = 1) or a connect failed (lost = 0) */
    void                         (*on_disconnected)(ngx_uint_t lost);
    /* needed, and unreachable for ondemand_helper_timeout */
    void                         (*on_unreachable)(void);
} ngx_http_ondemand_helper_handlers_t;


static ngx_inline std::string_view
ngx_http_ondemand_sv(ngx_str_t *s)
{
    return std::string_view((const char *) s->data, s->len);
}


/* the main configuration of the running cycle, for event handlers */

static ngx_inline ngx_http_ondemand_main_conf_t *
ngx_http_ondemand_cycle_conf(void)
{
    return (ngx_http_ondemand_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_ondemand_module);
}


/* ngx_http_ondemand_upstream_conf.cpp */
char *ngx_http_ondemand(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void *ngx_http_ondemand_create_srv_conf(ngx_conf_t *cf);
ngx_int_t ngx_http_ondemand_app_socket(ngx_conf_t *cf,
    ngx_http_ondemand_app_t *app, ngx_http_upstream_srv_conf_t *uscf);

/* ngx_http_ondemand_upstream.cpp */
ngx_int_t ngx_http_ondemand_wrap_upstream(ngx_conf_t *cf,
    ngx_http_ondemand_app_t *app);

/* ngx_http_ondemand_handler.cpp */
ngx_int_t ngx_http_ondemand_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_ondemand_is_warm(ngx_http_ondemand_ctx_t *ctx);
ngx_int_t ngx_http_ondemand_unwarm(ngx_http_request_t *r,
    ngx_http_ondemand_app_t *app);

/* ngx_http_ondemand_lifecycle.cpp */
extern ngx_http_ondemand_helper_handlers_t  ngx_http_ondemand_lifecycle;
void ngx_http_ondemand_lifecycle_init(ngx_cycle_t *cycle,
    ngx_http_ondemand_main_conf_t *omcf);
void ngx_http_ondemand_ask(ngx_http_ondemand_app_t *app,
    ondemand::request_action action);
void ngx_http_ondemand_send_stop(ngx_http_ondemand_app_t *app);
void ngx_http_ondemand_log_not_ready(ngx_log_t *log,
    ngx_http_ondemand_app_t *app, const proto::message *m);

/* ngx_http_ondemand_evict.cpp */
char *ngx_http_ondemand_max_memory(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_ondemand_make_room(ngx_http_ondemand_main_conf_t *omcf,
    ngx_http_ondemand_app_t *app, ngx_http_ondemand_victims_t *victims,
    ondemand::eviction_choice *choice);
ngx_http_ondemand_outcome_e ngx_http_ondemand_no_room(ngx_log_t *log,
    ngx_http_ondemand_main_conf_t *omcf, ngx_http_ondemand_app_t *app,
    const ondemand::eviction_choice *choice);
void ngx_http_ondemand_evict(ngx_log_t *log, ngx_http_ondemand_app_t *app,
    ngx_http_ondemand_victims_t *victims);
void ngx_http_ondemand_memory_subscribe(ngx_http_ondemand_main_conf_t *omcf);
void ngx_http_ondemand_memory_report(const proto::message &m);

/* ngx_http_ondemand_helper_conf.cpp */
char *ngx_http_ondemand_helper(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_ondemand_queue.cpp */
void ngx_http_ondemand_queue_init(void);
void ngx_http_ondemand_queue_add(ngx_http_ondemand_ctx_t *ctx);
void ngx_http_ondemand_unqueue(ngx_http_ondemand_ctx_t *ctx);
void ngx_http_ondemand_wake_all(ngx_http_ondemand_app_t *app,
    ngx_int_t status, ngx_http_ondemand_outcome_e outcome);
void ngx_http_ondemand_watch_stop(ngx_http_ondemand_app_t *app);
ngx_queue_t *ngx_http_ondemand_busy_apps(void);

/* ngx_http_ondemand_helper.cpp */
ngx_int_t ngx_http_ondemand_helper_init(ngx_cycle_t *cycle,
    ngx_http_ondemand_helper_handlers_t *handlers);
void ngx_http_ondemand_helper_exit(void);
ngx_int_t ngx_http_ondemand_helper_send(const proto::message &msg);
ngx_uint_t ngx_http_ondemand_helper_connected(void);
void ngx_http_ondemand_helper_needed(void);
void ngx_http_ondemand_helper_arm_deadline(void);
void ngx_http_ondemand_helper_drop(const char *why);
ngx_connection_t *ngx_http_ondemand_unix_connect(struct sockaddr *sockaddr,
    socklen_t socklen, ngx_log_t *log, ngx_err_t *err);

/* ngx_http_ondemand_upkeep.cpp */
void ngx_http_ondemand_upkeep(void);
void ngx_http_ondemand_upkeep_reply(const proto::message &m);

/* ngx_http_ondemand_variables.cpp */
ngx_int_t ngx_http_ondemand_add_variables(ngx_conf_t *cf);

/* ngx_http_ondemand_wait_page.cpp */
char *ngx_http_ondemand_wait_page(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_ondemand_page_applies(ngx_http_request_t *r);
ngx_int_t ngx_http_ondemand_send_page(ngx_http_request_t *r);

/* ngx_http_ondemand_metrics.cpp */
char *ngx_http_ondemand_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_ondemand_count(ngx_http_ondemand_ctx_t *ctx);

/* ngx_http_ondemand_zone.cpp */
ngx_int_t ngx_http_ondemand_init_zone(ngx_shm_zone_t *shm_zone, void *data);
void ngx_http_ondemand_zone_join(ngx_cycle_t *cycle);
void ngx_http_ondemand_zone_leave(void);
void ngx_http_ondemand_zone_reap(void);
ngx_uint_t ngx_http_ondemand_zone_orphan_to_stop(proto::message *msg,
    u_char *name, u_char *unit);
void ngx_http_ondemand_zone_orphan_reply(const proto::message &m);
ngx_http_ondemand_app_t *ngx_http_ondemand_find_app(
    ngx_http_ondemand_main_conf_t *omcf, u_char *name, size_t len);
void ngx_http_ondemand_lock(void);
void ngx_http_ondemand_unlock(void);


#endif /* _NGX_HTTP_ONDEMAND_H_INCLUDED_ */
