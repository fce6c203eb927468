
/*
 * ngx_http_ondemand_variables: $ondemand_status and $ondemand_wait_time,
 * read from the request's context (a subrequest's own).
 *
 * Must not call: any other file of the module.
 */


#include "ngx_http_ondemand.h"
#include "ondemand_metrics.h"


static ngx_int_t ngx_http_ondemand_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_ondemand_wait_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_ondemand_vars[] = {

    { ngx_string("ondemand_status"), NULL,
      ngx_http_ondemand_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ondemand_wait_time"), NULL,
      ngx_http_ondemand_wait_time_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* the context the variables read, or NULL: the variable is not found */

static ngx_http_ondemand_ctx_t *
ngx_http_ondemand_variable_ctx(ngx_http_request_t *r,
    ngx_http_variable_value_t *v)
{
    ngx_http_ondemand_ctx_t  *ctx;

    /* a subrequest's own, as its log line (log_subrequest) should say */
    ctx = (ngx_http_ondemand_ctx_t *)
              ngx_http_get_module_ctx(r, ngx_http_ondemand_module);

    if (ctx == NULL) {
        v->not_found = 1;
    }

    return ctx;
}


static ngx_int_t
ngx_http_ondemand_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    std::string_view          s;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = ngx_http_ondemand_variable_ctx(r, v);
    if (ctx == NULL) {
        return NGX_OK;
    }

    /* the names live in static storage */
    s = ondemand::outcome_name(ctx->outcome);

    v->len = s.size();
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) s.data();

    return NGX_OK;
}


static ngx_int_t
ngx_http_ondemand_wait_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_ondemand_ctx_t  *ctx;

    ctx = ngx_http_ondemand_variable_ctx(r, v);
    if (ctx == NULL) {
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


ngx_int_t
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
