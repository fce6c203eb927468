
/*
 * ngx_http_ondemand_zone: the shared memory zone (one record per app, found
 * by name, kept across reloads), the app lookup by name, and the zone mutex
 * that every transition of a record is made under.
 *
 * Must not call: any other file of the module (it is the bottom layer).
 */


#include "ngx_http_ondemand.h"

#include <new>


typedef struct {
    ngx_str_node_t                 sn;
    ondemand::app_record           record;
    u_char                         name[1];
} ngx_http_ondemand_node_t;


ngx_int_t
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
        hash = ngx_crc32_short(app->conf.name.data, app->conf.name.len);

        node = (ngx_http_ondemand_node_t *)
                   ngx_str_rbtree_lookup(&ctx->sh->rbtree, &app->conf.name,
                                         hash);

        if (node == NULL) {
            node = (ngx_http_ondemand_node_t *)
                ngx_slab_alloc(ctx->shpool,
                               sizeof(ngx_http_ondemand_node_t)
                               + app->conf.name.len);
            if (node == NULL) {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "ondemand_zone \"%V\" is too small for %ui apps",
                              &shm_zone->shm.name, omcf->apps.nelts);
                return NGX_ERROR;
            }

            new (&node->record) ondemand::app_record();

            ngx_memcpy(node->name, app->conf.name.data, app->conf.name.len);
            node->sn.str.len = app->conf.name.len;
            node->sn.str.data = node->name;
            node->sn.node.key = hash;

            ngx_rbtree_insert(&ctx->sh->rbtree, &node->sn.node);
        }

        app->record = &node->record;
    }

    return NGX_OK;
}


ngx_http_ondemand_app_t *
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


/* the zone mutex, which every transition of an app record is made under */

static ngx_shmtx_t *
ngx_http_ondemand_mutex(void)
{
    ngx_http_ondemand_zone_ctx_t   *zctx;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = ngx_http_ondemand_cycle_conf();
    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    return &zctx->shpool->mutex;
}


void
ngx_http_ondemand_lock(void)
{
    ngx_shmtx_lock(ngx_http_ondemand_mutex());
}


void
ngx_http_ondemand_unlock(void)
{
    ngx_shmtx_unlock(ngx_http_ondemand_mutex());
}
