#!/usr/bin/perl
# helperd unreachable: held requests get 503 with Retry-After once the short helper deadline
# passes (never a hang until the start timeout), with a clear error-log line; when helperd
# comes back, the next request is served.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('blog');

start_nginx(helper_timeout => '1s', http => <<"EOF2");
    upstream blog {
        server unix:${\ app_socket('blog')};
        ondemand unit=${\ app_unit('blog')} start_timeout=30s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app blog; proxy_pass http://blog; }
    }
EOF2

# -- no helperd at all
my $r = http_get(nginx_port(), '/', timeout => 20);
is($r->{status}, 503, 'helperd not running: 503');
is($r->{headers}{'retry-after'}, '5', '503 carries Retry-After');
cmp_ok($r->{elapsed}, '<', 20, 'answered at the helper deadline, not the 30s start timeout');
ok(wait_log_line(nginx_error_log(),
    qr/ondemand: helper "unix:\S+helperd\.sock" unreachable for 1000 ms, failing 1 held request\(s\) for app "blog"/,
    timeout => 5), 'the error log names the helper and the app');
is(unit_active(app_unit('blog')), 'inactive', 'nothing was started');

# -- helperd comes back: the workers reconnect by themselves and the app starts
start_helperd();
my $ok = http_get(nginx_port(), '/', timeout => 30);
is($ok->{status}, 200, 'helperd back: the cold request is served');
is(unit_active(app_unit('blog')), 'active', 'helperd back: the unit runs');

# -- helperd goes away while the app is warm: warm requests do not need it
stop_daemon('helperd');
my $warm = http_get(nginx_port(), '/');
is($warm->{status}, 200, 'warm requests are served while helperd is down');

done_testing();
