
/*
 * ngx_http_ondemand_upstream_conf: the "ondemand" directive of an
 * upstream{} block, which makes it an app: its parameters, and the app's
 * socket (socket= or the upstream's unix: server).
 *
 * Must not call: any other file of the module.
 */


#include "ngx_http_ondemand.h"


static ngx_int_t ngx_http_ondemand_set_param(ngx_http_ondemand_app_conf_t *acf,
    ngx_str_t *arg);


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
      offsetof(ngx_http_ondemand_app_conf_t, start_timeout) },

    { ngx_string("idle_timeout="), NGX_HTTP_ONDEMAND_TIME,
      offsetof(ngx_http_ondemand_app_conf_t, idle_timeout) },

    { ngx_string("stop_timeout="), NGX_HTTP_ONDEMAND_POSITIVE_TIME,
      offsetof(ngx_http_ondemand_app_conf_t, stop_timeout) },

    { ngx_string("frozen_timeout="), NGX_HTTP_ONDEMAND_TIME,
      offsetof(ngx_http_ondemand_app_conf_t, frozen_timeout) },

    { ngx_string("queue="), NGX_HTTP_ONDEMAND_POSITIVE_NUM,
      offsetof(ngx_http_ondemand_app_conf_t, queue) },

    { ngx_string("release="), NGX_HTTP_ONDEMAND_POSITIVE_NUM,
      offsetof(ngx_http_ondemand_app_conf_t, release) },

    { ngx_null_string, 0, 0 }
};



/* NGX_OK: set; NGX_ERROR: a known parameter with a bad value; NGX_DECLINED: unknown */

static ngx_int_t
ngx_http_ondemand_set_param(ngx_http_ondemand_app_conf_t *acf, ngx_str_t *arg)
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

            *(ngx_uint_t *) ((u_char *) acf + p->offset) = n;
            return NGX_OK;
        }

        t = ngx_parse_time(&v, 0);
        if (t == (ngx_msec_t) NGX_ERROR
            || (t == 0 && p->type == NGX_HTTP_ONDEMAND_POSITIVE_TIME))
        {
            return NGX_ERROR;
        }

        /* helperd refuses a START whose timeout_ms is over the protocol's cap */

        if (p->offset == offsetof(ngx_http_ondemand_app_conf_t, start_timeout)
            && t > proto::max_timeout_ms)
        {
            return NGX_ERROR;
        }

        *(ngx_msec_t *) ((u_char *) acf + p->offset) = t;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


char *
ngx_http_ondemand(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_app_t *app = (ngx_http_ondemand_app_t *) conf;

    ngx_int_t                       n, rc;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_ondemand_app_t       **slot;
    ngx_http_upstream_srv_conf_t   *uscf;
    ngx_http_ondemand_main_conf_t  *omcf;

    if (app->conf.enabled) {
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

    app->conf.name = uscf->host;
    ngx_str_set(&app->conf.ready, "connect");
    app->conf.start_timeout = 30000;
    app->conf.idle_timeout = 300000;
    app->conf.stop_timeout = 30000;
    app->conf.frozen_timeout = 3600000;
    app->conf.queue = 1000;
    app->conf.release = 32;
    app->conf.failed_status = NGX_HTTP_BAD_GATEWAY;

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "unit=", 5) == 0) {
            app->conf.unit.data = value[i].data + 5;
            app->conf.unit.len = value[i].len - 5;

            if (!proto::valid_unit_name(
                     ngx_http_ondemand_sv(&app->conf.unit)))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid systemd unit name \"%V\"",
                                   &app->conf.unit);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ready=", 6) == 0) {
            app->conf.ready.data = value[i].data + 6;
            app->conf.ready.len = value[i].len - 6;

            if (!proto::valid_ready_mode(
                     ngx_http_ondemand_sv(&app->conf.ready)))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ready mode \"%V\", expected "
                                   "connect, notify or http:/path",
                                   &app->conf.ready);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "socket=", 7) == 0) {
            app->conf.socket.data = value[i].data + 7;
            app->conf.socket.len = value[i].len - 7;

            if (!proto::valid_socket_path(
                     ngx_http_ondemand_sv(&app->conf.socket)))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid socket path \"%V\"",
                                   &app->conf.socket);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "keep_warm") == 0) {
            app->conf.keep_warm = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "freeze") == 0) {
            app->conf.freeze = 1;
            continue;
        }

        rc = ngx_http_ondemand_set_param(&app->conf, &value[i]);

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

            app->conf.failed_status = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    if (app->conf.unit.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ondemand\" in upstream \"%V\" needs unit=",
                           &uscf->host);
        return (char *) NGX_CONF_ERROR;
    }

    if (app->conf.keep_warm) {
        app->conf.idle_timeout = 0;
    }

    app->conf.enabled = 1;

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


void *
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
     *     conf->conf.unit = { 0, NULL };
     *     conf->conf.socket = { 0, NULL };
     *     conf->conf.enabled = 0;
     */

    ngx_queue_init(&conf->worker.waiters);

    return conf;
}


/* the app's socket: socket= or the upstream's only unix: server */

ngx_int_t
ngx_http_ondemand_app_socket(ngx_conf_t *cf, ngx_http_ondemand_app_t *app,
    ngx_http_upstream_srv_conf_t *uscf)
{
    size_t                         len;
    struct sockaddr_un            *sun;
    ngx_http_upstream_server_t    *server;

    if (app->conf.socket.len) {
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

    app->conf.socket.data = (u_char *) ngx_pnalloc(cf->pool, len);
    if (app->conf.socket.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(app->conf.socket.data, sun->sun_path, len);
    app->conf.socket.len = len;

    if (!proto::valid_socket_path(ngx_http_ondemand_sv(&app->conf.socket))) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "ondemand app \"%V\": invalid socket path \"%V\"",
                      &app->conf.name, &app->conf.socket);
        return NGX_ERROR;
    }

    return NGX_OK;

fail:

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "ondemand app \"%V\": the upstream needs exactly one "
                  "\"server unix:...\", or set socket= on \"ondemand\"",
                  &app->conf.name);

    return NGX_ERROR;
}
