
/*
 * ngx_http_ondemand_evict: room for a cold start under ondemand_max_running
 * and ondemand_max_memory.  The least recently used idle apps are stopped
 * (ondemand::victim_chooser decides, under the zone mutex); the memory
 * figures are the apps' zone records' (ngx_http_ondemand_memory.cpp).  See
 * docs/lifecycle.md, "A cap on running apps" and "A memory budget".
 *
 * Must not call: the handler or the upstream peer.  It reaches helperd
 * through lifecycle's send_stop.
 */


#include "ngx_http_ondemand.h"


/* ondemand_max_memory SIZE [expect=SIZE] */

char *
ngx_http_ondemand_max_memory(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_main_conf_t *omcf = (ngx_http_ondemand_main_conf_t *) conf;

    ngx_str_t  *value, s;

    if (omcf->max_memory != NGX_CONF_UNSET_SIZE) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    omcf->max_memory = ngx_parse_size(&value[1]);
    if (omcf->max_memory == (size_t) NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid ondemand_max_memory size \"%V\"",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "expect=", 7) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of ondemand_max_memory "
                               "(expect=SIZE expected)", &value[2]);
            return (char *) NGX_CONF_ERROR;
        }

        s.data = value[2].data + 7;
        s.len = value[2].len - 7;

        omcf->memory_expect = ngx_parse_size(&s);
        if (omcf->memory_expect == (size_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid ondemand_max_memory expect=\"%V\"", &s);
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * Under the zone mutex, before a cold app takes a running slot: when
 * ondemand_max_running apps run, or the running apps' memory plus what the
 * app is expected to take exceeds ondemand_max_memory, the least recently
 * used idle apps are stopped (their stops begin here; the caller sends them
 * with ngx_http_ondemand_evict() once it has unlocked).  NGX_DECLINED: not
 * enough can be stopped, nothing is.
 */

ngx_int_t
ngx_http_ondemand_make_room(ngx_http_ondemand_main_conf_t *omcf,
    ngx_http_ondemand_app_t *app, ngx_http_ondemand_victims_t *victims,
    ondemand::eviction_choice *choice)
{
    ngx_uint_t                 i;
    ngx_http_ondemand_app_t  **apps, *victim;
    ondemand::victim_chooser   chooser;
    ondemand::eviction_limits  limits;

    apps = (ngx_http_ondemand_app_t **) omcf->apps.elts;

    for (i = 0; i < omcf->apps.nelts; i++) {
        chooser.consider(i, *apps[i]->record, apps[i]->conf.keep_warm,
                         apps[i] == app,
                         omcf->max_memory
                         ? ondemand::memory_in_use(*apps[i]->record,
                                                   omcf->memory_expect)
                         : 0);
    }

    limits.max_running = omcf->max_running;
    limits.max_memory = omcf->max_memory;
    limits.need_bytes = omcf->max_memory
                        ? ondemand::memory_expected(*app->record,
                                                    omcf->memory_expect)
                        : 0;

    *choice = chooser.choose(limits);

    if (choice->room) {
        return NGX_OK;
    }

    if (choice->nvictims == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < choice->nvictims; i++) {
        victim = apps[choice->victims[i]];

        /* a warm request slipped in: the victims before it still stop */

        if (!ondemand::begin_eviction(*victim->record, ngx_pid,
                                      ngx_current_msec,
                                      victim->conf.stop_timeout))
        {
            choice->blocked = limits.max_memory
                              ? ondemand::eviction_choice::limit::memory
                              : ondemand::eviction_choice::limit::running;
            return NGX_DECLINED;
        }

        victims->app[victims->n++] = victim;
    }

    return NGX_OK;
}


/* the app cannot start for want of room: the error log says why */

ngx_http_ondemand_outcome_e
ngx_http_ondemand_no_room(ngx_log_t *log, ngx_http_ondemand_main_conf_t *omcf,
    ngx_http_ondemand_app_t *app, const ondemand::eviction_choice *choice)
{
    if (choice->blocked == ondemand::eviction_choice::limit::memory) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ondemand: app \"%V\" cannot start: ondemand_max_memory "
                      "%uz bytes, %uL in use by %uL running apps, %uL "
                      "expected for it, and the idle apps free only %uL, "
                      "unit %V", &app->conf.name, omcf->max_memory,
                      choice->memory_in_use, choice->running,
                      ondemand::memory_expected(*app->record,
                                                omcf->memory_expect),
                      choice->freed_bytes, &app->conf.unit);

        return NGX_HTTP_ONDEMAND_MAX_MEMORY;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "ondemand: app \"%V\" cannot start: %ui apps are "
                  "running (ondemand_max_running) and none is idle, "
                  "unit %V", &app->conf.name, omcf->max_running,
                  &app->conf.unit);

    return NGX_HTTP_ONDEMAND_MAX_RUNNING;
}


/* after the zone mutex: the STOPs of the victims make_room chose */

void
ngx_http_ondemand_evict(ngx_log_t *log, ngx_http_ondemand_app_t *app,
    ngx_http_ondemand_victims_t *victims)
{
    ngx_uint_t                i;
    ngx_http_ondemand_app_t  *victim;

    for (i = 0; i < victims->n; i++) {
        victim = victims->app[i];

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ondemand: stopping app \"%V\", the least recently "
                      "used, to make room for app \"%V\", unit %V, "
                      "memory %uL",
                      &victim->conf.name, &app->conf.name,
                      &victim->conf.unit,
                      victim->record->memory_bytes.load(
                          std::memory_order_relaxed));

        ngx_http_ondemand_send_stop(victim);
    }
}
