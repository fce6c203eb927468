#!/usr/bin/perl
# Failures reach the client as soon as the cause is known, with the reason in the error log:
# a unit that fails -> 502 (or 503 with failed_status=503) before the start timeout; a full
# hold queue -> 503 with Retry-After at once; helperd refusing a unit -> 502 with its reason.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('crash', exit_before_listen => 7);
install_app('crash503', exit_before_listen => 7);
install_app('slow', delay_ms => 1500);
install_unit('other-app.service', testapp_unit('other'));
start_helperd();

start_nginx(http => <<"EOF2");
    upstream crash {
        server unix:${\ app_socket('crash')};
        ondemand unit=${\ app_unit('crash')} start_timeout=30s;
    }
    upstream crash503 {
        server unix:${\ app_socket('crash503')};
        ondemand unit=${\ app_unit('crash503')} start_timeout=30s failed_status=503;
    }
    upstream slow {
        server unix:${\ app_socket('slow')};
        ondemand unit=${\ app_unit('slow')} start_timeout=30s queue=2;
    }
    upstream other {
        server unix:${\ app_socket('other')};
        ondemand unit=other-app.service start_timeout=30s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2

# -- the unit's process exits before it listens
my $r = http_get(nginx_port(), '/', headers => { 'X-App' => 'crash' }, timeout => 30);
is($r->{status}, 502, 'unit fails: 502 when the failure is known (not 504 at the start timeout)');
my $line = wait_log_line(nginx_error_log(), qr/ondemand: app "crash" failed to start: /, timeout => 5);
ok($line, 'unit fails: the error log says the app failed to start');
like($line // '', qr/(exit|status|code|failed)/i, 'unit fails: the reason names the cause');
diag("reason logged: $line") if $line;

$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'crash503' }, timeout => 30);
is($r->{status}, 503, 'failed_status=503: 503');
ok(defined $r->{headers}{'retry-after'}, 'failed_status=503: Retry-After');

# -- a retry after a failure starts the unit again (the app is cold, not stuck)
my $before = helperd_start_units(app_unit('crash'));
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'crash' }, timeout => 30);
is($r->{status}, 502, 'retry after a failure: tried again');
is(helperd_start_units(app_unit('crash')), $before + 1, 'retry after a failure: a new StartUnit');

# -- hold queue full: 2 held, the rest 503 at once
my $results = http_get_many(nginx_port(), '/', 6, headers => { 'X-App' => 'slow' }, timeout => 30);
my @ok   = grep { ($_->{status} // 0) == 200 } @$results;
my @full = grep { ($_->{status} // 0) == 503 } @$results;
is(scalar(@ok), 2, 'queue=2: two requests held and served');
is(scalar(@full), 4, 'queue=2: the others get 503');
ok(!grep({ !defined $_->{headers}{'retry-after'} } @full), 'queue full: 503s carry Retry-After');
# all requests were sent together: every 503 came back before the first held request's 200
cmp_ok((sort { $a <=> $b } map { $_->{elapsed} } @full)[-1], '<', (sort { $a <=> $b } map { $_->{elapsed} } @ok)[0],
    'queue full: answered at once, before the held requests');
ok(wait_log_line(nginx_error_log(), qr/ondemand: app "slow" hold queue is full \(2\), unit \Q${\ app_unit('slow')}\E/, timeout => 5),
    'queue full: logged, naming the unit');

# -- helperd refuses a unit outside its allowlist
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'other' }, timeout => 30);
is($r->{status}, 502, 'unit not allowed by helperd: 502');
ok(wait_log_line(nginx_error_log(), qr/ondemand: app "other" failed to start: .*not.allowed/, timeout => 5),
    'unit not allowed: the reason is in the error log');
is(unit_active('other-app.service'), 'inactive', 'unit not allowed: not started');

# -- an app that stops behind ondemand's back while helperd is away (so no DOWN comes):
#    the one request that finds it gone is held and starts it again (issue #11, item 5)
install_app('vanish');
reload_nginx(http => $Ondemand::Stack::LAST_HTTP . <<"EOF2");
    upstream vanish { server unix:${\ app_socket('vanish')}; ondemand unit=${\ app_unit('vanish')}; }
EOF2
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'vanish' }, timeout => 30);
is($r->{status}, 200, 'vanish: started');
stop_daemon('helperd', signal => 'KILL');
systemctl('stop', app_unit('vanish'));
start_helperd();
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'vanish' }, timeout => 30);
is($r->{status}, 200, 'vanish: the request that finds it gone is held and starts it (no 502)');
ok(wait_log_line(nginx_error_log(),
    qr/app "vanish" is not running, made it cold .*holding the request until it is started, unit \Q${\ app_unit('vanish')}\E/,
    timeout => 5), 'vanish: logged, naming the unit');
is(unit_active(app_unit('vanish')), 'active', 'vanish: running again');
my $again = http_get(nginx_port(), '/', headers => { 'X-App' => 'vanish' }, timeout => 30);
is($again->{status}, 200, 'vanish: the next request is warm');

done_testing();
