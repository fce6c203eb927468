
/*
 * ngx_http_ondemand_zone: the shared memory zone (one record per app, found
 * by name, kept across reloads), the app lookup by name, the zone mutex that
 * every transition of a record is made under, the workers' count slots
 * (cleared when a worker dies), and the records of removed apps (orphans:
 * stopped, then freed once no worker can use them).
 *
 * Must not call: any other file of the module (it is the bottom layer).
 */


#include "ngx_http_ondemand.h"

#include <new>


typedef struct {
    ngx_str_node_t                 sn;
    /* in sh->orphans while no configuration names the app */
    ngx_queue_t                    orphan;
    /* the configuration that made it an orphan (0: it is none) */
    uint64_t                       orphaned;
    /* the last configuration that names it */
    uint64_t                       seen;
    /* its unit, in the zone, to stop it once it is an orphan */
    ngx_str_t                      unit;
    ondemand::app_record           record;
    u_char                         name[1];
} ngx_http_ondemand_node_t;


static ngx_int_t ngx_http_ondemand_zone_create(ngx_shm_zone_t *shm_zone,
    ngx_http_ondemand_zone_ctx_t *ctx);
static ngx_int_t ngx_http_ondemand_set_unit(ngx_slab_pool_t *shpool,
    ngx_http_ondemand_node_t *node, ngx_str_t *unit);
static void ngx_http_ondemand_orphan_apps(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log);
static ngx_uint_t ngx_http_ondemand_unit_configured(
    ngx_http_ondemand_main_conf_t *omcf, ngx_str_t *unit);
static ngx_uint_t ngx_http_ondemand_zone_orphans(
    ngx_http_ondemand_zone_ctx_t *ctx);
static void ngx_http_ondemand_free_orphans(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log);
static void ngx_http_ondemand_reap_workers(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log);
static void ngx_http_ondemand_clear_slot(ngx_http_ondemand_zone_ctx_t *ctx,
    std::size_t slot, ngx_uint_t *requests);
static bool ngx_http_ondemand_process_alive(std::int64_t pid);
static ngx_http_ondemand_node_t *ngx_http_ondemand_next_node(
    ngx_http_ondemand_zone_ctx_t *ctx, ngx_http_ondemand_node_t *node);
static ngx_http_ondemand_zone_ctx_t *ngx_http_ondemand_zone_ctx(void);


/*
 * Every load of the configuration (start, reload, nginx -t) gets the next
 * configuration number.  Each app of it finds its record by name, or gets a
 * new one; records of apps it does not name become orphans, which workers
 * stop through helperd and which are freed once no worker of an older
 * configuration, which may still use them, is alive (ngx_http_ondemand_upkeep).
 * Workers are running during a reload: everything is done under the mutex.
 */

ngx_int_t
ngx_http_ondemand_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                        hash;
    ngx_uint_t                      i, missing;
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

    } else if (ngx_http_ondemand_zone_create(shm_zone, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->config = ++ctx->sh->config;

    /* room first: what workers that died or records nobody uses held */

    ngx_http_ondemand_reap_workers(ctx, shm_zone->shm.log);
    ngx_http_ondemand_free_orphans(ctx, shm_zone->shm.log);

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;
    missing = 0;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];
        hash = ngx_crc32_short(app->conf.name.data, app->conf.name.len);

        node = (ngx_http_ondemand_node_t *)
                   ngx_str_rbtree_lookup(&ctx->sh->rbtree, &app->conf.name,
                                         hash);

        if (node == NULL) {
            node = (ngx_http_ondemand_node_t *)
                ngx_slab_alloc_locked(ctx->shpool,
                                      sizeof(ngx_http_ondemand_node_t)
                                      + app->conf.name.len);
            if (node == NULL) {
                missing++;
                continue;
            }

            ngx_memzero((void *) node, sizeof(ngx_http_ondemand_node_t));
            new (&node->record) ondemand::app_record();

            ngx_memcpy(node->name, app->conf.name.data, app->conf.name.len);
            node->sn.str.len = app->conf.name.len;
            node->sn.str.data = node->name;
            node->sn.node.key = hash;

            ngx_rbtree_insert(&ctx->sh->rbtree, &node->sn.node);
        }

        if (node->orphaned) {
            /* named again before it was freed */
            ngx_queue_remove(&node->orphan);
            node->orphaned = 0;
        }

        node->seen = ctx->config;

        if (ngx_http_ondemand_set_unit(ctx->shpool, node, &app->conf.unit)
            != NGX_OK)
        {
            missing++;
            continue;
        }

        app->record = &node->record;
    }

    if (missing == 0) {
        ngx_http_ondemand_orphan_apps(ctx, shm_zone->shm.log);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (missing) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "ondemand_zone \"%V\" is too small: %ui of %ui apps "
                      "did not fit (%ui records of removed apps are still "
                      "in use)", &shm_zone->shm.name, missing,
                      omcf->apps.nelts, ngx_http_ondemand_zone_orphans(ctx));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_zone_create(ngx_shm_zone_t *shm_zone,
    ngx_http_ondemand_zone_ctx_t *ctx)
{
    size_t  size;

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ctx->sh = (ngx_http_ondemand_shctx_t *)
                  ngx_slab_alloc(ctx->shpool,
                                 sizeof(ngx_http_ondemand_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero((void *) ctx->sh, sizeof(ngx_http_ondemand_shctx_t));
    new (&ctx->sh->slots) ondemand::worker_slot_table();

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&ctx->sh->orphans);

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

    return NGX_OK;
}


/* the unit as the latest configuration names it, for stopping an orphan */

static ngx_int_t
ngx_http_ondemand_set_unit(ngx_slab_pool_t *shpool,
    ngx_http_ondemand_node_t *node, ngx_str_t *unit)
{
    u_char  *p;

    if (node->unit.len == unit->len
        && ngx_strncmp(node->unit.data, unit->data, unit->len) == 0)
    {
        return NGX_OK;
    }

    p = (u_char *) ngx_slab_alloc_locked(shpool, unit->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, unit->data, unit->len);

    if (node->unit.data) {
        ngx_slab_free_locked(shpool, node->unit.data);
    }

    node->unit.data = p;
    node->unit.len = unit->len;

    return NGX_OK;
}


/* records the configuration does not name become orphans */

static void
ngx_http_ondemand_orphan_apps(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log)
{
    ngx_http_ondemand_node_t  *node;

    for (node = ngx_http_ondemand_next_node(ctx, NULL);
         node != NULL;
         node = ngx_http_ondemand_next_node(ctx, node))
    {

        if (node->seen == ctx->config || node->orphaned) {
            continue;
        }

        node->orphaned = ctx->config;
        ngx_queue_insert_tail(&ctx->sh->orphans, &node->orphan);

        /*
         * another app of this configuration runs the same unit (a renamed
         * app): it is that app's now, never stopped as an orphan's
         */

        if (ngx_http_ondemand_unit_configured(ctx->main_conf, &node->unit)) {
            node->record.state.store(ondemand::app_state::cold);
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "ondemand: app \"%V\" is in no configuration any more; "
                      "it is stopped once idle and its record freed, unit %V",
                      &node->sn.str, &node->unit);
    }
}


static ngx_uint_t
ngx_http_ondemand_unit_configured(ngx_http_ondemand_main_conf_t *omcf,
    ngx_str_t *unit)
{
    ngx_uint_t                 i;
    ngx_http_ondemand_app_t  **apps;

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        if (apps[i]->conf.unit.len == unit->len
            && ngx_strncmp(apps[i]->conf.unit.data, unit->data, unit->len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_ondemand_zone_orphans(ngx_http_ondemand_zone_ctx_t *ctx)
{
    ngx_uint_t    n;
    ngx_queue_t  *q;

    n = 0;

    for (q = ngx_queue_head(&ctx->sh->orphans);
         q != ngx_queue_sentinel(&ctx->sh->orphans);
         q = ngx_queue_next(q))
    {
        n++;
    }

    return n;
}


/* frees the records of orphans that are cold and that no live worker uses */

static void
ngx_http_ondemand_free_orphans(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log)
{
    ngx_queue_t               *q, *next;
    ngx_http_ondemand_node_t  *node;

    for (q = ngx_queue_head(&ctx->sh->orphans);
         q != ngx_queue_sentinel(&ctx->sh->orphans);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_ondemand_node_t, orphan);

        if (!ondemand::orphan_freeable(node->record)
            || ondemand::older_workers_alive(ctx->sh->slots, node->orphaned,
                                             ngx_http_ondemand_process_alive))
        {
            continue;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "ondemand: freeing the record of app \"%V\"",
                       &node->sn.str);

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ctx->sh->rbtree, &node->sn.node);

        if (node->unit.data) {
            ngx_slab_free_locked(ctx->shpool, node->unit.data);
        }

        ngx_slab_free_locked(ctx->shpool, node);
    }
}


/*
 * A worker that died (SIGKILL, a crash) cannot end the requests it counted:
 * its slot is cleared in every record, so that its apps can stop and its
 * hold queue places are free again.
 */

static void
ngx_http_ondemand_reap_workers(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_log_t *log)
{
    uint64_t     dead;
    ngx_uint_t   requests, level;
    std::size_t  slot;

    dead = ondemand::reap_dead_workers(ctx->sh->slots,
                                       ngx_http_ondemand_process_alive);

    for (slot = 1; dead; slot++) {
        if (!(dead & ((uint64_t) 1 << slot))) {
            continue;
        }

        dead &= ~((uint64_t) 1 << slot);

        ngx_http_ondemand_clear_slot(ctx, slot, &requests);

        level = requests ? NGX_LOG_WARN : NGX_LOG_INFO;

        ngx_log_error(level, log, 0,
                      "ondemand: a worker process is gone; the %ui request(s) "
                      "it had in flight or held are no longer counted",
                      requests);
    }
}


static void
ngx_http_ondemand_clear_slot(ngx_http_ondemand_zone_ctx_t *ctx,
    std::size_t slot, ngx_uint_t *requests)
{
    ngx_http_ondemand_node_t  *node;

    *requests = 0;

    for (node = ngx_http_ondemand_next_node(ctx, NULL);
         node != NULL;
         node = ngx_http_ondemand_next_node(ctx, node))
    {
        *requests += ondemand::clear_worker_counts(node->record, slot);
    }
}


static bool
ngx_http_ondemand_process_alive(std::int64_t pid)
{
    /* EPERM: it exists, under another user */
    return kill((ngx_pid_t) pid, 0) == 0 || ngx_errno == NGX_EPERM;
}


/* a worker takes a slot for its counts, at start-up */

void
ngx_http_ondemand_zone_join(ngx_cycle_t *cycle)
{
    bool                           reclaimed;
    ngx_uint_t                     requests;
    std::size_t                    slot;
    ngx_http_ondemand_zone_ctx_t  *ctx;

    ctx = ngx_http_ondemand_zone_ctx();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* a worker respawned after a crash: the dead one's counts go first */
    ngx_http_ondemand_reap_workers(ctx, cycle->log);

    slot = ondemand::claim_worker_slot(ctx->sh->slots, ngx_pid, ctx->config,
                                       ngx_http_ondemand_process_alive,
                                       reclaimed);
    requests = 0;

    if (reclaimed) {
        ngx_http_ondemand_clear_slot(ctx, slot, &requests);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (slot == 0) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "ondemand: more than %uz worker processes share the "
                      "zone: this one counts its requests in the shared slot, "
                      "which a crash can leave counted",
                      ondemand::worker_slots - 1);
    }

    if (requests) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "ondemand: the worker process before this one died; "
                      "the %ui request(s) it had in flight or held are no "
                      "longer counted", requests);
    }
}


/* an exiting worker gives its slot back: nothing of it is left counted */

void
ngx_http_ondemand_zone_leave(void)
{
    ngx_uint_t                     requests;
    ngx_http_ondemand_zone_ctx_t  *ctx;

    if (ondemand::this_worker_slot == 0) {
        return;
    }

    ctx = ngx_http_ondemand_zone_ctx();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_ondemand_clear_slot(ctx, ondemand::this_worker_slot, &requests);
    ondemand::release_worker_slot(ctx->sh->slots, ondemand::this_worker_slot);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ondemand::this_worker_slot = 0;
}


/* periodic upkeep (the idle scan): dead workers, freeable orphans */

void
ngx_http_ondemand_zone_reap(void)
{
    ngx_http_ondemand_zone_ctx_t  *ctx;

    ctx = ngx_http_ondemand_zone_ctx();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_ondemand_reap_workers(ctx, ngx_cycle->log);
    ngx_http_ondemand_free_orphans(ctx, ngx_cycle->log);

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * The next orphan to stop, if any: its STOP line is made into msg, with its
 * name and unit copied to name and unit (the record may be freed by another
 * worker as soon as the mutex is released).
 */

ngx_uint_t
ngx_http_ondemand_zone_orphan_to_stop(proto::message *msg, u_char *name,
    u_char *unit)
{
    ngx_uint_t                     found;
    ngx_queue_t                   *q;
    ngx_http_ondemand_node_t      *node;
    ngx_http_ondemand_zone_ctx_t  *ctx;

    ctx = ngx_http_ondemand_zone_ctx();
    found = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->orphans);
         q != ngx_queue_sentinel(&ctx->sh->orphans);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_ondemand_node_t, orphan);

        if (node->unit.len == 0
            || !ondemand::begin_orphan_stop(node->record, ngx_pid,
                                            ngx_current_msec,
                                            NGX_HTTP_ONDEMAND_ORPHAN_STOP))
        {
            continue;
        }

        ngx_memcpy(name, node->sn.str.data, node->sn.str.len);
        ngx_memcpy(unit, node->unit.data, node->unit.len);

        msg->kind = proto::verb::stop;
        msg->app = std::string_view((char *) name, node->sn.str.len);
        msg->unit = std::string_view((char *) unit, node->unit.len);
        msg->gen = node->record.gen.load();

        found = 1;
        break;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return found;
}


/* helperd's answer to an orphan's STOP: the record is cold, to be freed */

void
ngx_http_ondemand_zone_orphan_reply(const proto::message &m)
{
    ngx_str_t                      name;
    ngx_rbtree_node_t             *rn;
    ngx_http_ondemand_node_t      *node;
    ngx_http_ondemand_zone_ctx_t  *ctx;

    if (m.kind != proto::verb::stopped && m.kind != proto::verb::failed
        && m.kind != proto::verb::down)
    {
        return;
    }

    ctx = ngx_http_ondemand_zone_ctx();

    name.data = (u_char *) m.app.data();
    name.len = m.app.size();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    rn = (ngx_rbtree_node_t *)
             ngx_str_rbtree_lookup(&ctx->sh->rbtree, &name,
                                   ngx_crc32_short(name.data, name.len));
    node = (ngx_http_ondemand_node_t *) rn;

    if (node && node->orphaned) {
        if (m.kind == proto::verb::down) {
            (void) ondemand::on_down(node->record);

        } else if (m.kind == proto::verb::failed
                   && m.reason == proto::failure::in_use)
        {
            (void) ondemand::on_stop_refused(node->record, m.gen);

        } else {
            (void) ondemand::on_stopped(node->record, m.gen);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/* every record, in name order: the first with node NULL; NULL after the last */

static ngx_http_ondemand_node_t *
ngx_http_ondemand_next_node(ngx_http_ondemand_zone_ctx_t *ctx,
    ngx_http_ondemand_node_t *node)
{
    ngx_rbtree_node_t  *root, *sentinel;

    root = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    if (node) {
        return (ngx_http_ondemand_node_t *)
                   ngx_rbtree_next(&ctx->sh->rbtree, &node->sn.node);
    }

    if (root == sentinel) {
        return NULL;
    }

    return (ngx_http_ondemand_node_t *) ngx_rbtree_min(root, sentinel);
}


static ngx_http_ondemand_zone_ctx_t *
ngx_http_ondemand_zone_ctx(void)
{
    return (ngx_http_ondemand_zone_ctx_t *)
               ngx_http_ondemand_cycle_conf()->shm_zone->data;
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
    return &ngx_http_ondemand_zone_ctx()->shpool->mutex;
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
