
/*
 * ngx_http_ondemand_memory: helperd's memory figures for ondemand_max_memory.
 * On each helper connection, under a budget, a worker subscribes; each
 * MEMORY app bytes line goes into the app's zone record, which eviction
 * (ngx_http_ondemand_evict.cpp) reads.  Split from eviction so that the
 * helper connection's dispatch (lifecycle) and eviction's stops do not call
 * each other's files.
 */


#include "ngx_http_ondemand.h"


/* on each helper connection, under a budget: SUBSCRIBE memory */

void
ngx_http_ondemand_memory_subscribe(ngx_http_ondemand_main_conf_t *omcf)
{
    proto::message  msg;

    if (omcf->max_memory == 0) {
        return;
    }

    msg.kind = proto::verb::subscribe;
    msg.topic = "memory";

    (void) ngx_http_ondemand_helper_send(msg);
}


/*
 * MEMORY app bytes: the app's figure and its largest one, shared by all
 * workers.  Without fresh figures (helperd down) the last ones stay.
 */

void
ngx_http_ondemand_memory_report(const proto::message &m)
{
    std::uint64_t             peak;
    ngx_http_ondemand_app_t  *app;

    app = ngx_http_ondemand_find_app(ngx_http_ondemand_cycle_conf(),
                                     (u_char *) m.app.data(), m.app.size());
    if (app == NULL) {
        return;
    }

    app->record->memory_bytes.store(m.memory_bytes, std::memory_order_relaxed);
    app->record->memory_ms.store(ngx_current_msec, std::memory_order_relaxed);

    peak = app->record->memory_peak.load(std::memory_order_relaxed);

    while (m.memory_bytes > peak
           && !app->record->memory_peak.compare_exchange_weak(
                  peak, m.memory_bytes, std::memory_order_relaxed))
    {
        /* another worker raised it meanwhile: peak now holds its figure */
    }
}
