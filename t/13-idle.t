#!/usr/bin/perl
# Idle stop: an app is stopped after its idle timeout, measured from the end of its last
# request; a request in flight (a long download, an open stream) keeps it; a request after
# the stop starts it again; idle_timeout=0 keeps an app running.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('idle');
install_app('busy');
install_app('keep');
start_helperd();

start_nginx(http => <<"EOF2");
    upstream idle {
        server unix:${\ app_socket('idle')};
        ondemand unit=${\ app_unit('idle')} idle_timeout=1s;
    }
    upstream busy {
        server unix:${\ app_socket('busy')};
        ondemand unit=${\ app_unit('busy')} idle_timeout=1s;
    }
    upstream keep {
        server unix:${\ app_socket('keep')};
        ondemand unit=${\ app_unit('keep')} idle_timeout=0;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2

my $r = http_get(nginx_port(), '/', headers => { 'X-App' => 'idle' }, timeout => 30);
is($r->{status}, 200, 'cold request served');
is(unit_active(app_unit('idle')), 'active', 'app running');
ok(wait_for(sub { unit_active(app_unit('idle')) eq 'inactive' }, timeout => 10,
    what => 'the idle app to stop'), 'idle app stopped by systemd after its idle timeout');
ok(wait_log_line(nginx_error_log(), qr/ondemand: app "idle" idle for 1000 ms, stopping/, timeout => 5),
    'the stop is logged');
ok(wait_log_line(nginx_error_log(), qr/ondemand: app "idle" stopped/, timeout => 5),
    'STOPPED is logged');

my $again = http_get(nginx_port(), '/', headers => { 'X-App' => 'idle' }, timeout => 30);
is($again->{status}, 200, 'a request after the stop is served');
isnt($again->{headers}{'x-pid'}, $r->{headers}{'x-pid'}, 'by a newly started app');
is(helperd_start_units(app_unit('idle')), 2, 'two starts in all');

# -- a request in flight longer than the idle timeout keeps the app running
$r = http_get(nginx_port(), '/sleep?ms=3000', headers => { 'X-App' => 'busy' }, timeout => 30);
is($r->{status}, 200, 'a 3 s request on an app with a 1 s idle timeout completes');
is(count_log_lines(nginx_error_log(), qr/app "busy" idle for/), 0,
    'the app was not stopped while the request was in flight');
ok(wait_for(sub { unit_active(app_unit('busy')) eq 'inactive' }, timeout => 10,
    what => 'busy to stop afterwards'), 'and is stopped once idle');

# -- idle_timeout=0: never stopped
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'keep' }, timeout => 30);
is($r->{status}, 200, 'keep-running app served');
# Start 'idle' right after: once the scan has stopped it (1 s idle), 'keep' was idle as long.
my $from = log_size(nginx_error_log());
is(http_get(nginx_port(), '/', headers => { 'X-App' => 'idle' }, timeout => 30)->{status}, 200,
    'idle app started once more');
ok(wait_log_line(nginx_error_log(), qr/app "idle" stopped/, from => $from, timeout => 10),
    'idle app stopped again');
is(count_log_lines(nginx_error_log(), qr/app "keep" idle for/), 0, 'idle_timeout=0: never stopped');
is(unit_active(app_unit('keep')), 'active', 'idle_timeout=0: still running');

done_testing();
