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
install_app('slow', delay_ms => 1500);

start_nginx(helper_timeout => '1s', http => <<"EOF2");
    upstream blog {
        server unix:${\ app_socket('blog')};
        ondemand unit=${\ app_unit('blog')} start_timeout=30s;
    }
    upstream slow {
        server unix:${\ app_socket('slow')};
        ondemand unit=${\ app_unit('slow')} start_timeout=30s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app blog; proxy_pass http://blog; }
        location /slow { ondemand_app slow; proxy_pass http://slow; }
    }
EOF2

# -- no helperd at all
my $r = http_get(nginx_port(), '/', timeout => 20);
is($r->{status}, 503, 'helperd not running: 503');
is($r->{headers}{'retry-after'}, '5', '503 carries Retry-After');
ok(wait_log_line(nginx_error_log(),
    qr/ondemand: helper "unix:\S+helperd\.sock" unreachable for 1000 ms, failing 1 held request\(s\) for app "blog"/,
    timeout => 5), 'answered at the helper deadline (not the start timeout): the error log names the helper and the app');
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

# -- helperd dies in the middle of a start and comes back: the held requests survive
#    (the workers reconnect and ask again; helperd finds the unit starting or started)
start_helperd();
my $port = nginx_port();
my @pids;
for (1 .. 3) {
    my $pid = fork();
    if ($pid == 0) {
        my $res = http_get($port, '/slow', timeout => 30);
        exit(($res->{status} // 0) == 200 ? 0 : 1);
    }
    push @pids, $pid;
}
ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('slow')}\E/, timeout => 10),
    'the start is under way');
stop_daemon('helperd', signal => 'KILL');
start_helperd();
for (@pids) { waitpid($_, 0); is($? >> 8, 0, 'a request held across a helperd crash: 200') }
is(unit_active(app_unit('slow')), 'active', 'the app runs');

done_testing();
