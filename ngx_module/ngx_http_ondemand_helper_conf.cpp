
/*
 * ngx_http_ondemand_helper_conf: the "ondemand_helper unix:PATH [key=FILE]"
 * directive: the helper's address, and the shared key that the master reads
 * from its file while it reads the configuration.
 *
 * Must not call: the helper connection, lifecycle, or the handler.
 */


#include "ngx_http_ondemand.h"


static char *ngx_http_ondemand_read_key(ngx_conf_t *cf,
    ngx_http_ondemand_main_conf_t *omcf, ngx_str_t *file);


char *
ngx_http_ondemand_helper(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ondemand_main_conf_t *omcf = (ngx_http_ondemand_main_conf_t *) conf;

    ngx_url_t   u;
    ngx_str_t  *value;

    if (omcf->helper) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strncmp(value[1].data, "unix:", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ondemand_helper \"%V\" must be a unix: socket",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid ondemand_helper \"%V\": %s",
                           &value[1], u.err ? u.err : "bad address");
        return (char *) NGX_CONF_ERROR;
    }

    omcf->helper = u.addrs;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "key=", 4) != 0 || value[2].len == 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of ondemand_helper "
                               "(key=FILE expected)", &value[2]);
            return (char *) NGX_CONF_ERROR;
        }

        value[2].data += 4;
        value[2].len -= 4;

        return ngx_http_ondemand_read_key(cf, omcf, &value[2]);
    }

    return NGX_CONF_OK;
}


/*
 * key=FILE: the master reads the key while it reads the configuration, so
 * the file can be readable by root only; the workers send it in HELLO.  The
 * file holds one line: 16-256 printable ASCII bytes (proto::key_from_file).
 */

static char *
ngx_http_ondemand_read_key(ngx_conf_t *cf, ngx_http_ondemand_main_conf_t *omcf,
    ngx_str_t *file)
{
    u_char            *key;
    ssize_t            n;
    size_t             len;
    ngx_fd_t           fd;
    ngx_str_t          name;
    const char        *bad;
    ngx_file_info_t    fi;
    std::string_view   view;
    u_char             buf[proto::max_key_length + 2];

    name = *file;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY | NGX_FILE_NONBLOCK,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "ondemand_helper: cannot open key file \"%V\"",
                           &name);
        return (char *) NGX_CONF_ERROR;
    }

    bad = NULL;
    len = 0;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        bad = "is not a regular file";

    } else {
        /* one byte more than a key and its '\n': to see that it is more */

        while (len < sizeof(buf)) {
            n = ngx_read_fd(fd, buf + len, sizeof(buf) - len);

            if (n == -1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                                   "ondemand_helper: cannot read key file "
                                   "\"%V\"", &name);
                ngx_close_file(fd);
                return (char *) NGX_CONF_ERROR;
            }

            if (n == 0) {
                break;
            }

            len += n;
        }
    }

    ngx_close_file(fd);

    if (bad == NULL) {
        bad = proto::key_from_file(std::string_view((char *) buf, len), view);
    }

    if (bad) {
        ngx_explicit_memzero(buf, sizeof(buf));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ondemand_helper: key file \"%V\" %s", &name, bad);
        return (char *) NGX_CONF_ERROR;
    }

    key = (u_char *) ngx_pnalloc(cf->pool, view.size());
    if (key == NULL) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memcpy(key, view.data(), view.size());
    ngx_explicit_memzero(buf, sizeof(buf));

    omcf->helper_key.data = key;
    omcf->helper_key.len = view.size();

    return NGX_CONF_OK;
}
