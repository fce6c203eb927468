
/*
 * ngx_http_ondemand_metrics: the "ondemand_metrics" location (a content
 * handler, like stub_status) and the counting of each request's outcome.
 * It reads every app's record in the zone without the zone's mutex (each
 * counter is one atomic) and renders it with ondemand_metrics.h: the
 * Prometheus text format, or JSON for "?format=json" or an Accept header
 * naming application/json.  Metrics: docs/directives.md, "ondemand_metrics".
 *
 * Must not call: any other file of the module.
 */


#include "ngx_http_ondemand.h"
#include "ondemand_metrics.h"

#include <new>


#define NGX_HTTP_ONDEMAND_METRICS_BUF  16384


/* the rendered text, in a chain of buffers from the request's pool */

class ngx_http_ondemand_chain_sink final : public ondemand::text_sink {
public:
    explicit ngx_http_ondemand_chain_sink(ngx_pool_t *pool) : pool_(pool) {}

    void write(std::string_view text) override;

    ngx_chain_t    *out = NULL;
    off_t           length = 0;
    ngx_uint_t      failed = 0;

private:
    ngx_pool_t     *pool_;
    ngx_chain_t   **last_ = &out;
    ngx_buf_t      *buf_ = NULL;
};


static ngx_int_t ngx_http_ondemand_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ondemand_metrics_snapshot(ngx_http_request_t *r,
    ondemand::metrics_snapshot *m);


char *
ngx_http_ondemand_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_ondemand_metrics_handler;

    return NGX_CONF_OK;
}


/* the end of a request that missed the warm path: its outcome is counted */

void
ngx_http_ondemand_count(ngx_http_ondemand_ctx_t *ctx)
{
    ondemand::app_counters  *c;

    c = &ctx->app->record->counters;

    c->count(ctx->outcome);

    if (ctx->outcome == NGX_HTTP_ONDEMAND_COLD) {
        c->observe_hold(ctx->wait_time);
    }
}


void
ngx_http_ondemand_chain_sink::write(std::string_view text)
{
    size_t        n;
    ngx_chain_t  *cl;

    while (!text.empty() && !failed) {

        if (buf_ == NULL || buf_->last == buf_->end) {
            buf_ = ngx_create_temp_buf(pool_, NGX_HTTP_ONDEMAND_METRICS_BUF);
            cl = ngx_alloc_chain_link(pool_);

            if (buf_ == NULL || cl == NULL) {
                failed = 1;
                return;
            }

            cl->buf = buf_;
            cl->next = NULL;
            *last_ = cl;
            last_ = &cl->next;
        }

        n = ngx_min(text.size(), (size_t) (buf_->end - buf_->last));
        buf_->last = ngx_cpymem(buf_->last, text.data(), n);
        length += n;
        text.remove_prefix(n);
    }
}


static ngx_int_t
ngx_http_ondemand_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     accept;
    ngx_chain_t                  *cl;
    ondemand::metrics_snapshot    m;
    ngx_http_ondemand_chain_sink  sink(r->pool);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_ondemand_metrics_snapshot(r, &m) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_null(&accept);

#if (NGX_HTTP_HEADERS)
    if (r->headers_in.accept) {
        accept = r->headers_in.accept->value;
    }
#endif

    if (ondemand::wants_json(ngx_http_ondemand_sv(&r->args),
                             ngx_http_ondemand_sv(&accept)))
    {
        ondemand::render_json(m, sink);
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ondemand::render_prometheus(m, sink);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    if (sink.failed || sink.out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = sink.length;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    for (cl = sink.out; cl->next; cl = cl->next) { /* void */ }

    cl->buf->last_buf = (r == r->main) ? 1 : 0;
    cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, sink.out);
}


/*
 * Every configured app's record, the workers' helper connections, the
 * zone's size.  nginx's millisecond clock is converted to unix time from
 * the cached time of day.
 */

static ngx_int_t
ngx_http_ondemand_metrics_snapshot(ngx_http_request_t *r,
    ondemand::metrics_snapshot *m)
{
    uint64_t                        now_unix, last;
    ngx_uint_t                      i;
    ngx_time_t                     *tp;
    ngx_http_ondemand_app_t       **apps, *app;
    ngx_http_ondemand_shctx_t      *sh;
    ondemand::app_snapshot         *snaps;
    ondemand::worker_snapshot      *workers;
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_ondemand_module);

    tp = ngx_timeofday();
    now_unix = (uint64_t) tp->sec * 1000 + tp->msec;

    snaps = (ondemand::app_snapshot *)
                ngx_palloc(r->pool, (omcf->apps.nelts + 1)
                                    * sizeof(ondemand::app_snapshot));
    workers = (ondemand::worker_snapshot *)
                  ngx_palloc(r->pool, ondemand::worker_slots
                                      * sizeof(ondemand::worker_snapshot));
    if (snaps == NULL || workers == NULL) {
        return NGX_ERROR;
    }

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        if (app->record == NULL) {
            continue;
        }

        last = app->record->last_active_ms.load();

        if (last != 0) {
            /* a worker's cached clock may be a little ahead of ours */
            last = (ngx_current_msec >= last)
                   ? now_unix - (ngx_current_msec - last) : now_unix;
        }

        new (&snaps[m->napps++]) ondemand::app_snapshot(
            ondemand::snapshot_of(*app->record,
                                  ngx_http_ondemand_sv(&app->conf.name),
                                  ngx_http_ondemand_sv(&app->conf.unit),
                                  last));
    }

    m->apps = snaps;
    m->workers = workers;

    if (omcf->shm_zone == NULL || omcf->shm_zone->data == NULL) {
        return NGX_OK;
    }

    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;
    sh = zctx->sh;

    m->zone_size_bytes = omcf->shm_zone->shm.size;
    m->zone_free_bytes = (uint64_t) zctx->shpool->pfree << ngx_pagesize_shift;

    for (i = 1; i < ondemand::worker_slots; i++) {
        if (sh->slots.pid[i].load() != 0) {
            workers[m->nworkers].slot = i;
            workers[m->nworkers].pid = sh->slots.pid[i].load();
            workers[m->nworkers].helper_connected =
                                  sh->slots.helper_connected[i].load() != 0;
            m->nworkers++;
        }
    }

    return NGX_OK;
}
