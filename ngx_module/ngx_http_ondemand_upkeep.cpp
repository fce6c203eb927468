
/*
 * ngx_http_ondemand_upkeep: the zone's upkeep, run from the idle scan of
 * every worker: the counts of workers that died are cleared, the apps that
 * no configuration names any more (orphans, after a reload) are stopped
 * through helperd once nothing uses them, and their records are freed.
 *
 * Must not call: module, upstream, handler, lifecycle, queue.
 */


#include "ngx_http_ondemand.h"


void
ngx_http_ondemand_upkeep(void)
{
    u_char          name[proto::max_app_name_length];
    u_char          unit[proto::max_unit_name_length];
    proto::message  msg;

    ngx_http_ondemand_zone_reap();

    /* a stop needs the helper: without it, orphans stay up until it is back */

    if (!ngx_http_ondemand_helper_connected()) {
        return;
    }

    while (ngx_http_ondemand_zone_orphan_to_stop(&msg, name, unit)) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "ondemand: stopping app \"%*s\", which no "
                      "configuration names any more, unit %*s",
                      msg.app.size(), msg.app.data(),
                      msg.unit.size(), msg.unit.data());

        if (ngx_http_ondemand_helper_send(msg) != NGX_OK) {
            return;
        }
    }

    /* an orphan whose STOP is with helperd needs its record no more */
    ngx_http_ondemand_zone_reap();
}


/* a reply about an app this configuration does not name: maybe an orphan */

void
ngx_http_ondemand_upkeep_reply(const proto::message &m)
{
    ngx_http_ondemand_zone_orphan_reply(m);
}
