
/*
 * ngx_http_ondemand_helper: this worker's connection to helperd, and
 * nothing else: connect with backoff, HELLO, line framing, a non-blocking
 * send, and the deadline of a helper that stays unreachable while needed.
 * Also the one non-blocking unix-socket connect of the module.
 *
 * Must not call: any file above it.  What it learns goes up through the
 * callbacks that init_process sets (on_message, on_connected,
 * on_disconnected, on_unreachable).
 */


#include "ngx_http_ondemand.h"


#define NGX_HTTP_ONDEMAND_BACKOFF_MIN      50
#define NGX_HTTP_ONDEMAND_BACKOFF_MAX      2000
/* the longest backoff while requests wait for the helper */
#define NGX_HTTP_ONDEMAND_BACKOFF_NEEDED   100
#define NGX_HTTP_ONDEMAND_OUT_MAX          (4 * 1024 * 1024)


typedef struct {
    ngx_connection_t                     *connection;
    u_char                               *out;
    size_t                                out_len;
    size_t                                out_size;
    ngx_event_t                           reconnect;
    ngx_event_t                           deadline;
    ngx_msec_t                            backoff;
    ngx_log_t                            *log;
    ngx_http_ondemand_helper_handlers_t  *up;
    unsigned                              connected:1;
    unsigned                              down_logged:1;
} ngx_http_ondemand_helper_t;


static void ngx_http_ondemand_connect(ngx_event_t *ev);
static void ngx_http_ondemand_helper_publish(
    ngx_http_ondemand_main_conf_t *omcf, ngx_uint_t connected);
static ngx_int_t ngx_http_ondemand_hello(
    ngx_http_ondemand_main_conf_t *omcf);
static void ngx_http_ondemand_reconnect_now(void);
static void ngx_http_ondemand_helper_close(const char *why);
static void ngx_http_ondemand_helper_read(ngx_event_t *rev);
static void ngx_http_ondemand_helper_write(ngx_event_t *wev);
static void ngx_http_ondemand_helper_line(std::string_view line);
static void ngx_http_ondemand_helper_deadline(ngx_event_t *ev);


static ngx_http_ondemand_helper_t  ngx_http_ondemand_helper_conn;

/* the input framing: a line and its '\n' at the most */
static char  ngx_http_ondemand_helper_in[proto::max_line_length + 1];
static proto::line_reader  ngx_http_ondemand_helper_reader(
    ngx_http_ondemand_helper_in, sizeof(ngx_http_ondemand_helper_in));


ngx_int_t
ngx_http_ondemand_helper_init(ngx_cycle_t *cycle,
    ngx_http_ondemand_helper_handlers_t *handlers)
{
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    h->log = cycle->log;
    h->up = handlers;
    h->backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;

    h->out_size = 4 * (proto::max_line_length + 1);
    h->out = (u_char *) ngx_alloc(h->out_size, cycle->log);

    if (h->out == NULL) {
        return NGX_ERROR;
    }

    h->reconnect.handler = ngx_http_ondemand_connect;
    h->reconnect.log = cycle->log;
    h->reconnect.data = h;
    h->reconnect.cancelable = 1;

    h->deadline.handler = ngx_http_ondemand_helper_deadline;
    h->deadline.log = cycle->log;
    h->deadline.data = h;

    /* a persistent connection, made up front so that a cold start pays no connect */

    ngx_http_ondemand_connect(&h->reconnect);

    return NGX_OK;
}


void
ngx_http_ondemand_helper_exit(void)
{
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    if (h->connection) {
        ngx_close_connection(h->connection);
        h->connection = NULL;
        h->connected = 0;
    }
}


ngx_uint_t
ngx_http_ondemand_helper_connected(void)
{
    return ngx_http_ondemand_helper_conn.connected;
}


/*
 * A non-blocking connect() to a unix socket, on a connection of the worker.
 * NULL: no socket or connection (logged); else *err is 0 when connected, or
 * connect()'s error, and the caller closes the connection if it gives up.
 */

ngx_connection_t *
ngx_http_ondemand_unix_connect(struct sockaddr *sockaddr, socklen_t socklen,
    ngx_log_t *log, ngx_err_t *err)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_socket_errno,
                      ngx_socket_n " failed");
        return NULL;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        ngx_close_socket(s);
        return NULL;
    }

    c = ngx_get_connection(s, log);
    if (c == NULL) {
        ngx_close_socket(s);
        return NULL;
    }

    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;
    c->read->log = log;
    c->write->log = log;

    *err = (connect(s, sockaddr, socklen) == -1) ? ngx_socket_errno : 0;

    return c;
}


ngx_int_t
ngx_http_ondemand_helper_send(const proto::message &msg)
{
    size_t                       n, size;
    u_char                      *p;
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    /* an earlier send of the same event may have dropped the connection */

    if (!h->connected) {
        return NGX_ERROR;
    }

    if (h->out_size - h->out_len < proto::max_line_length + 1) {
        size = h->out_size * 2;

        if (size > NGX_HTTP_ONDEMAND_OUT_MAX) {
            ngx_http_ondemand_helper_close("helper is not reading");
            return NGX_ERROR;
        }

        p = (u_char *) ngx_alloc(size, h->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, h->out, h->out_len);
        ngx_free(h->out);
        h->out = p;
        h->out_size = size;
    }

    n = proto::format(msg, (char *) h->out + h->out_len,
                      h->out_size - h->out_len);
    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, h->log, 0,
                      "ondemand: cannot encode a %s line",
                      proto::verb_name(msg.kind).data());
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "ondemand: to helper: %*s", n - 1, h->out + h->out_len);

    h->out_len += n;

    ngx_http_ondemand_helper_write(h->connection->write);

    return NGX_OK;
}


static void
ngx_http_ondemand_connect(ngx_event_t *ev)
{
    ngx_err_t                       err;
    ngx_msec_t                      max;
    ngx_connection_t               *c;
    ngx_http_ondemand_helper_t     *h;
    ngx_http_ondemand_main_conf_t  *omcf;

    h = &ngx_http_ondemand_helper_conn;

    omcf = ngx_http_ondemand_cycle_conf();

    c = ngx_http_ondemand_unix_connect(omcf->helper->sockaddr,
                                       omcf->helper->socklen, h->log, &err);
    if (c == NULL) {
        goto retry;
    }

    if (err != 0 && err != NGX_EINPROGRESS) {
        if (!h->down_logged) {
            ngx_log_error(NGX_LOG_ERR, h->log, err,
                          "ondemand: cannot connect to helper \"%V\", "
                          "retrying", &omcf->helper->name);
            h->down_logged = 1;
        }

        ngx_close_connection(c);
        goto retry;
    }

    c->data = h;
    c->read->handler = ngx_http_ondemand_helper_read;
    c->write->handler = ngx_http_ondemand_helper_write;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            ngx_close_connection(c);
            goto retry;
        }

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_close_connection(c);
        goto retry;
    }

    h->connection = c;
    h->connected = 1;
    h->out_len = 0;
    h->backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;

    ngx_http_ondemand_helper_reader.clear();

    if (h->down_logged) {
        ngx_log_error(NGX_LOG_NOTICE, h->log, 0,
                      "ondemand: connected to helper \"%V\"",
                      &omcf->helper->name);
        h->down_logged = 0;
    }

    if (h->deadline.timer_set) {
        ngx_del_timer(&h->deadline);
    }

    if (ngx_http_ondemand_hello(omcf) != NGX_OK) {
        return;
    }

    ngx_http_ondemand_helper_publish(omcf, 1);
    h->up->on_connected();

    return;

retry:

    /* arms the deadline if requests wait for the helper */

    h->up->on_disconnected(0);

    /*
     * exponential backoff with jitter, so that workers do not reconnect in
     * step; while requests wait (the deadline runs) it stays short, so that
     * a helperd back before ondemand_helper_timeout is not missed
     */

    max = h->deadline.timer_set ? NGX_HTTP_ONDEMAND_BACKOFF_NEEDED
                                : NGX_HTTP_ONDEMAND_BACKOFF_MAX;

    h->backoff = ngx_min(h->backoff, max);

    ngx_add_timer(&h->reconnect, h->backoff / 2 + ngx_random() % h->backoff);

    h->backoff = ngx_min(h->backoff * 2, max);
}


/* tells ondemand_metrics, through the zone, whether this worker is connected */

static void
ngx_http_ondemand_helper_publish(ngx_http_ondemand_main_conf_t *omcf,
    ngx_uint_t connected)
{
    ngx_http_ondemand_zone_ctx_t  *zctx;

    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    if (ondemand::this_worker_slot != 0) {
        zctx->sh->slots.helper_connected[ondemand::this_worker_slot].store(
                                                            connected ? 1 : 0);
    }
}


/*
 * The first line on a new connection: the workers of one nginx share the
 * instance name, so that helperd counts their USE leases as one nginx's;
 * with key=FILE it carries the key helperd requires (docs/PROTOCOL.md).
 */

static ngx_int_t
ngx_http_ondemand_hello(ngx_http_ondemand_main_conf_t *omcf)
{
    proto::message                 msg;
    ngx_http_ondemand_zone_ctx_t  *zctx;

    zctx = (ngx_http_ondemand_zone_ctx_t *) omcf->shm_zone->data;

    msg.kind = proto::verb::hello;
    msg.instance = std::string_view((char *) zctx->sh->instance);

    /* ondemand_helper ... key=FILE, read by the master */
    msg.key = std::string_view((char *) omcf->helper_key.data,
                               omcf->helper_key.len);

    return ngx_http_ondemand_helper_send(msg);
}


/*
 * Something waits for the helper.  Do not let it wait out a backoff that
 * has grown while nobody needed the helper (a restarted helperd is back at
 * once, and the backoff may be longer than ondemand_helper_timeout); while
 * the deadline runs the backoff stays short; if the helper stays
 * unreachable, the waiters fail at ondemand_helper_timeout.
 */

void
ngx_http_ondemand_helper_needed(void)
{
    if (ngx_http_ondemand_helper_conn.connected) {
        return;
    }

    ngx_http_ondemand_helper_arm_deadline();

    ngx_http_ondemand_reconnect_now();
}


void
ngx_http_ondemand_helper_arm_deadline(void)
{
    ngx_event_t                    *ev;
    ngx_http_ondemand_main_conf_t  *omcf;

    ev = &ngx_http_ondemand_helper_conn.deadline;

    if (!ev->timer_set) {
        omcf = ngx_http_ondemand_cycle_conf();
        ngx_add_timer(ev, omcf->helper_timeout);
    }
}


static void
ngx_http_ondemand_reconnect_now(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_ondemand_helper_conn.reconnect;

    if (!ev->timer_set
        || (ngx_msec_int_t) (ev->timer.key - ngx_current_msec)
           <= NGX_HTTP_ONDEMAND_BACKOFF_MIN)
    {
        return;
    }

    ngx_del_timer(ev);
    ngx_http_ondemand_helper_conn.backoff = NGX_HTTP_ONDEMAND_BACKOFF_MIN;

    ngx_http_ondemand_connect(ev);
}


/* the connection is as good as lost (helperd said it is shutting down) */

void
ngx_http_ondemand_helper_drop(const char *why)
{
    ngx_http_ondemand_helper_close(why);
}


static void
ngx_http_ondemand_helper_close(const char *why)
{
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    if (!h->connected) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, h->log, 0,
                  "ondemand: lost the helper connection: %s", why);

    ngx_close_connection(h->connection);
    h->connection = NULL;
    h->connected = 0;
    h->down_logged = 1;
    h->out_len = 0;

    ngx_http_ondemand_helper_reader.clear();

    ngx_http_ondemand_helper_publish(ngx_http_ondemand_cycle_conf(), 0);
    h->up->on_disconnected(1);

    if (!h->reconnect.timer_set && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&h->reconnect, NGX_HTTP_ONDEMAND_BACKOFF_MIN);
    }
}


static void
ngx_http_ondemand_helper_read(ngx_event_t *rev)
{
    ssize_t                       n;
    std::string_view              line;
    ngx_connection_t             *c;
    proto::line_reader           *reader;
    proto::line_reader::status    rc;
    ngx_http_ondemand_helper_t   *h;

    c = (ngx_connection_t *) rev->data;
    h = (ngx_http_ondemand_helper_t *) c->data;
    reader = &ngx_http_ondemand_helper_reader;

    for ( ;; ) {
        n = c->recv(c, (u_char *) reader->space(), reader->room());

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_ondemand_helper_close(n == 0 ? "closed by helper"
                                                  : "read error");
            return;
        }

        reader->commit(n);

        while ((rc = reader->next(line)) == proto::line_reader::status::line)
        {
            ngx_http_ondemand_helper_line(line);

            if (!h->connected) {
                return;
            }
        }

        if (rc == proto::line_reader::status::too_long) {
            ngx_http_ondemand_helper_close("line too long from helper");
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_ondemand_helper_close("cannot watch for reading");
    }
}


static void
ngx_http_ondemand_helper_write(ngx_event_t *wev)
{
    ssize_t                      n;
    ngx_connection_t            *c;
    ngx_http_ondemand_helper_t  *h;

    c = (ngx_connection_t *) wev->data;
    h = &ngx_http_ondemand_helper_conn;

    while (h->out_len > 0) {
        n = c->send(c, h->out, h->out_len);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_ondemand_helper_close("write error");
            return;
        }

        h->out_len -= n;
        ngx_memmove(h->out, h->out + n, h->out_len);
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_ondemand_helper_close("cannot watch for writing");
    }
}


static void
ngx_http_ondemand_helper_line(std::string_view line)
{
    u_char                       c, safe[200];
    size_t                       i, n;
    proto::parse_result          pr;
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "ondemand: from helper: %*s", line.size(), line.data());

    pr = proto::parse(line);

    if (!pr.ok) {
        /* its start, with control bytes made visible: it goes to the log */

        n = ngx_min(line.size(), sizeof(safe));

        for (i = 0; i < n; i++) {
            c = (u_char) line[i];
            safe[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
        }

        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "ondemand: bad line from helper (%s): \"%*s\"%s",
                      pr.error, n, safe, n < line.size() ? "..." : "");
        return;
    }

    h->up->on_message(pr.msg);
}


/*
 * The helper stayed unreachable for ondemand_helper_timeout: one more
 * connect first (a helperd back since the last attempt is not missed),
 * then the waiters fail.
 */

static void
ngx_http_ondemand_helper_deadline(ngx_event_t *ev)
{
    ngx_http_ondemand_helper_t  *h;

    h = &ngx_http_ondemand_helper_conn;

    if (h->connected) {
        return;
    }

    if (!ngx_exiting && !ngx_terminate) {
        if (h->reconnect.timer_set) {
            ngx_del_timer(&h->reconnect);
        }

        ngx_http_ondemand_connect(&h->reconnect);

        if (h->connected) {
            return;
        }
    }

    h->up->on_unreachable();

    /* nothing waits any more (the failed connect re-armed it) */

    if (h->deadline.timer_set) {
        ngx_del_timer(&h->deadline);
    }
}
