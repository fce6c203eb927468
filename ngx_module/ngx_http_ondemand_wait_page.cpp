
/*
 * ngx_http_ondemand_wait_page: the "ondemand_wait_page" directive and the
 * page itself.  A browser navigation (a main GET request whose Accept names
 * text/html) held longer than the configured time is answered 503 with a
 * small page that reloads itself; the start goes on, and the reload that
 * finds the app ready gets the app's own answer.  API clients and other
 * methods are held as before.
 *
 * Must not call: any other file of the module.
 */


#include "ngx_http_ondemand.h"


/* a page the operator gives is read with the configuration: bounded */
#define NGX_HTTP_ONDEMAND_WAIT_PAGE_MAX  65536


static ngx_str_t  ngx_http_ondemand_builtin_page = ngx_string(
"<!DOCTYPE html>\n"
"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
"<meta http-equiv=\"refresh\" content=\"1\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>Starting&hellip;</title>\n"
"<style>body{font:16px/1.5 system-ui,sans-serif;color:#333;display:flex;"
"align-items:center;justify-content:center;height:90vh;margin:0}"
"main{text-align:center}</style>\n"
"</head><body><main id=\"ondemand-wait-page\">\n"
"<h1>Starting&hellip;</h1>\n"
"<p>This site was asleep and is starting now.<br>"
"The page reloads by itself when it is ready.</p>\n"
"</main></body></html>\n");


char *
ngx_http_ondemand_wait_page(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_loc_conf_t *olcf = (ngx_http_ondemand_loc_conf_t *) conf;

    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t       *value, file;
    ngx_file_info_t  fi;

    if (olcf->wait_page != NGX_CONF_UNSET_MSEC) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return (char *) "takes no file with \"off\"";
        }

        olcf->wait_page = 0;
        return NGX_CONF_OK;
    }

    olcf->wait_page = ngx_parse_time(&value[1], 0);

    if (olcf->wait_page == (ngx_msec_t) NGX_ERROR || olcf->wait_page == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" in \"ondemand_wait_page\" "
                           "(a time such as 2s, or off)", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    file = value[2];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open the wait page \"%V\"", &file);
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) == 0
        || ngx_file_size(&fi) > NGX_HTTP_ONDEMAND_WAIT_PAGE_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the wait page \"%V\" must be a file of 1 to %d "
                           "bytes", &file, NGX_HTTP_ONDEMAND_WAIT_PAGE_MAX);
        ngx_close_file(fd);
        return (char *) NGX_CONF_ERROR;
    }

    olcf->wait_page_html.len = (size_t) ngx_file_size(&fi);
    olcf->wait_page_html.data = (u_char *) ngx_pnalloc(cf->pool,
                                                  olcf->wait_page_html.len);
    if (olcf->wait_page_html.data == NULL) {
        ngx_close_file(fd);
        return (char *) NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, olcf->wait_page_html.data, olcf->wait_page_html.len);
    ngx_close_file(fd);

    if (n != (ssize_t) olcf->wait_page_html.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read the wait page \"%V\"", &file);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a browser's navigation, where the waiting page is configured */

ngx_uint_t
ngx_http_ondemand_page_applies(ngx_http_request_t *r)
{
    ngx_http_ondemand_loc_conf_t  *olcf;

    olcf = (ngx_http_ondemand_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_ondemand_module);

    if (olcf->wait_page == 0 || r != r->main || r->method != NGX_HTTP_GET) {
        return 0;
    }

#if (NGX_HTTP_HEADERS)
    if (r->headers_in.accept == NULL) {
        return 0;
    }

    return ngx_strlcasestrn(r->headers_in.accept->value.data,
                            r->headers_in.accept->value.data
                            + r->headers_in.accept->value.len,
                            (u_char *) "text/html", 9 - 1) != NULL;
#else
    return 0;
#endif
}


/*
 * Sends the page (503, Retry-After set by the handler, never cached) and
 * finalizes the request: NGX_DONE for the phase handler.
 */

ngx_int_t
ngx_http_ondemand_send_page(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      type = ngx_string("text/html");
    ngx_table_elt_t               *h;
    ngx_http_complex_value_t       cv;
    ngx_http_ondemand_loc_conf_t  *olcf;

    olcf = (ngx_http_ondemand_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_ondemand_module);

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value = olcf->wait_page_html.len ? olcf->wait_page_html
                                        : ngx_http_ondemand_builtin_page;

    rc = ngx_http_send_response(r, NGX_HTTP_SERVICE_UNAVAILABLE, &type, &cv);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}
