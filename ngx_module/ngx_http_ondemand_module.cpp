
/*
 * ngx_http_ondemand_module: holds requests for apps that are not running,
 * has helperd start their systemd units, and releases the requests to the
 * stock proxy module once the app accepts connections.  See docs/.
 *
 * This file: the module's tables, the main and location configuration, the
 * http-level directives, postconfiguration, and init/exit process, which
 * wire the helper connection's callbacks to lifecycle.  The code map is at
 * the top of docs/design.md.
 *
 * C++ compiled by nginx's own build (-fno-exceptions -fno-rtti, see
 * scripts/ngx-cc), in nginx's style.  Everything that lives in nginx pools
 * or shared memory is trivially destructible.
 *
 * Must not be called by the other files (it is the top layer).
 */


#include "ngx_http_ondemand.h"
#include "ondemand_policy.h"


static void *ngx_http_ondemand_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ondemand_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ondemand_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ondemand_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ondemand_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ondemand_app(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ondemand_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_ondemand_check_units(ngx_conf_t *cf,
    ngx_http_ondemand_main_conf_t *omcf);
static ngx_int_t ngx_http_ondemand_cmp_units(const void *one,
    const void *two);
static ngx_int_t ngx_http_ondemand_check_static_apps(ngx_conf_t *cf,
    ngx_http_ondemand_main_conf_t *omcf);
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
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
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

    { ngx_string("ondemand_max_memory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_ondemand_max_memory,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
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

    { ngx_string("ondemand_wake"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ondemand_loc_conf_t, wake),
      NULL },

    { ngx_string("ondemand_wait_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_ondemand_wait_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ondemand_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ondemand_metrics,
      0,
      0,
      NULL },

      ngx_null_command
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
    conf->max_memory = NGX_CONF_UNSET_SIZE;
    conf->memory_expect = NGX_CONF_UNSET_SIZE;

    if (ngx_array_init(&conf->apps, cf->pool, 4,
                       sizeof(ngx_http_ondemand_app_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&conf->static_apps, cf->pool, 4,
                       sizeof(ngx_http_ondemand_static_app_t))
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
    ngx_conf_init_size_value(omcf->max_memory, 0);
    ngx_conf_init_size_value(omcf->memory_expect, 0);

    return NGX_CONF_OK;
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
    conf->wake = (ngx_http_complex_value_t *) NGX_CONF_UNSET_PTR;
    conf->wait_page = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_ondemand_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ondemand_loc_conf_t *prev = (ngx_http_ondemand_loc_conf_t *) parent;
    ngx_http_ondemand_loc_conf_t *conf = (ngx_http_ondemand_loc_conf_t *) child;

    ngx_conf_merge_ptr_value(conf->app, prev->app, NULL);
    ngx_conf_merge_ptr_value(conf->wake, prev->wake, NULL);

    if (conf->wait_page == NGX_CONF_UNSET_MSEC) {
        conf->wait_page = (prev->wait_page == NGX_CONF_UNSET_MSEC)
                          ? 0 : prev->wait_page;
        conf->wait_page_html = prev->wait_page_html;
    }

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
ngx_http_ondemand_app(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_loc_conf_t *olcf = (ngx_http_ondemand_loc_conf_t *) conf;

    ngx_str_t                         *value;
    ngx_http_ondemand_static_app_t    *sa;
    ngx_http_ondemand_main_conf_t     *omcf;
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

    if (olcf->app->lengths) {
        return NGX_CONF_OK;
    }

    /* a static name: upstreams may come later, postconfiguration checks it */

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_ondemand_module);

    sa = (ngx_http_ondemand_static_app_t *) ngx_array_push(&omcf->static_apps);
    if (sa == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    sa->name = value[1];
    sa->file = cf->conf_file->file.name;
    sa->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ondemand_postconfiguration(ngx_conf_t *cf)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_hash_init_t                 hash;
    ngx_hash_keys_arrays_t          keys;
    ngx_http_handler_pt            *h;
    ngx_http_ondemand_app_t        *app, **apps;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_ondemand_module);

    if (omcf->apps.nelts == 0) {
        return ngx_http_ondemand_check_static_apps(cf, omcf);
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

    if (ngx_http_ondemand_check_units(cf, omcf) != NGX_OK) {
        return NGX_ERROR;
    }

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        app = apps[i];

        if (ngx_http_ondemand_wrap_upstream(cf, app) != NGX_OK) {
            return NGX_ERROR;
        }

        /* scan often enough to stop an app within ~1 s of its idle timeout */

        omcf->idle_interval = ondemand::idle_scan_interval(
                                  omcf->idle_interval, app->conf.idle_timeout,
                                  app->conf.freeze, app->conf.frozen_timeout);
    }

    /* app name -> app, for ondemand_app $variable and helper replies */

    keys.pool = cf->pool;
    keys.temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(&keys, NGX_HASH_LARGE) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < omcf->apps.nelts; i++) {
        rc = ngx_hash_add_key(&keys, &apps[i]->conf.name, apps[i], 0);

        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "duplicate ondemand app \"%V\"",
                          &apps[i]->conf.name);
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

    if (ngx_http_ondemand_check_static_apps(cf, omcf) != NGX_OK) {
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


/*
 * Two apps with one unit would share one systemd unit under two names:
 * helperd would start and stop it for each, and the apps' states would
 * disagree.  Sorted by unit, neighbours tell.
 */

static ngx_int_t
ngx_http_ondemand_check_units(ngx_conf_t *cf,
    ngx_http_ondemand_main_conf_t *omcf)
{
    ngx_uint_t                 i, n;
    ngx_http_ondemand_app_t  **apps;

    n = omcf->apps.nelts;

    apps = (ngx_http_ondemand_app_t **)
               ngx_palloc(cf->temp_pool, n * sizeof(ngx_http_ondemand_app_t *));
    if (apps == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(apps, omcf->apps.elts, n * sizeof(ngx_http_ondemand_app_t *));

    ngx_sort(apps, n, sizeof(ngx_http_ondemand_app_t *),
             ngx_http_ondemand_cmp_units);

    for (i = 1; i < n; i++) {
        if (ngx_http_ondemand_cmp_units(&apps[i - 1], &apps[i]) == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "ondemand apps \"%V\" and \"%V\" have the same "
                          "unit \"%V\": each app needs a unit of its own",
                          &apps[i - 1]->conf.name, &apps[i]->conf.name,
                          &apps[i]->conf.unit);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_cmp_units(const void *one, const void *two)
{
    ngx_str_t  *a, *b;

    a = &(*(ngx_http_ondemand_app_t **) one)->conf.unit;
    b = &(*(ngx_http_ondemand_app_t **) two)->conf.unit;

    if (a->len != b->len) {
        return a->len < b->len ? -1 : 1;
    }

    return ngx_memcmp(a->data, b->data, a->len);
}


/* an "ondemand_app" without variables names an app that exists */

static ngx_int_t
ngx_http_ondemand_check_static_apps(ngx_conf_t *cf,
    ngx_http_ondemand_main_conf_t *omcf)
{
    ngx_uint_t                       i;
    ngx_http_ondemand_static_app_t  *sa;

    sa = (ngx_http_ondemand_static_app_t *) omcf->static_apps.elts;

    for (i = 0; i < omcf->static_apps.nelts; i++) {

        if (sa[i].name.len == 0
            || (omcf->apps.nelts
                && ngx_http_ondemand_find_app(omcf, sa[i].name.data,
                                              sa[i].name.len)))
        {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"ondemand_app %V\" names no app: no upstream "
                      "\"%V\" has \"ondemand\", in %V:%ui",
                      &sa[i].name, &sa[i].name, &sa[i].file, sa[i].line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_ondemand_module);

    if (omcf == NULL || omcf->apps.nelts == 0) {
        return NGX_OK;
    }

    /* a slot for this worker's counts in the zone's records */
    ngx_http_ondemand_zone_join(cycle);

    ngx_http_ondemand_queue_init();
    ngx_http_ondemand_lifecycle_init(cycle, omcf);

    /* helperd's replies and the connection's ups and downs go to lifecycle */

    return ngx_http_ondemand_helper_init(cycle, &ngx_http_ondemand_lifecycle);
}


static void
ngx_http_ondemand_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ondemand_main_conf_t  *omcf;

    omcf = (ngx_http_ondemand_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_ondemand_module);

    if (omcf == NULL || omcf->apps.nelts == 0) {
        return;
    }

    ngx_http_ondemand_helper_exit();
    ngx_http_ondemand_zone_leave();
}
