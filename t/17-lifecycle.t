#!/usr/bin/perl
# Lifecycle beyond idle stop: a cap on running apps that stops the least recently used idle
# app (and refuses when all are busy), keep_warm apps started with nginx, and apps started
# outside ondemand (an operator's `systemctl start`) served warm and idle-stopped.

use strict;
use warnings;
use Test::More;
use POSIX qw(WNOHANG);
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app($_, log_requests => 1) for qw(one two three pinned outside);
start_helperd();

my $http = "    ondemand_max_running 3;\n";
for my $app (qw(one two three)) {
    $http .= "    upstream $app { server unix:${\ app_socket($app)}; "
           . "ondemand unit=${\ app_unit($app)} idle_timeout=10m; }\n";
}
$http .= <<"EOF";
    upstream pinned { server unix:${\ app_socket('pinned')}; ondemand unit=${\ app_unit('pinned')} keep_warm; }
    upstream outside { server unix:${\ app_socket('outside')}; ondemand unit=${\ app_unit('outside')} idle_timeout=1s; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF

# -- an app started by the operator before nginx knew of it
systemctl('start', app_unit('outside'));
is(unit_active(app_unit('outside')), 'active', 'outside: started with systemctl');
ok(wait_for(sub { unix_connects(app_socket('outside')) }, timeout => 10), 'outside: listening');
my $outside_pid = http_get_unix(app_socket('outside'), '/')->{headers}{'x-pid'};

start_nginx(http => $http);

# -- keep_warm: started when nginx starts, without a request
ok(wait_for(sub { unit_active(app_unit('pinned')) eq 'active' }, timeout => 15,
    what => 'the keep_warm app to start'), 'keep_warm app started with nginx');
ok(wait_for(sub { unix_connects(app_socket('pinned')) }, timeout => 10), 'keep_warm app listening');
is(http_get(nginx_port(), '/', headers => { 'X-App' => 'pinned' }, timeout => 30)->{status}, 200,
    'keep_warm app served');
is(helperd_start_units(app_unit('pinned')), 1, 'keep_warm app: one start');

# -- the outside app is served by the process systemctl started, with no StartUnit
my $r = http_get(nginx_port(), '/', headers => { 'X-App' => 'outside' }, timeout => 30);
is($r->{status}, 200, 'outside: served');
is($r->{headers}{'x-pid'}, $outside_pid, 'outside: by the process the operator started');
is(http_get(nginx_port(), '/', headers => { 'X-App' => 'outside' })->{headers}{'x-pid'}, $outside_pid,
    'outside: warm afterwards, never restarted');
ok(wait_for(sub { unit_active(app_unit('outside')) eq 'inactive' }, timeout => 10,
    what => 'outside to be idle-stopped'), 'outside: idle-stopped like the rest');

# -- cap of 3 running apps: pinned + one + two run; three needs room
is(http_get(nginx_port(), '/', headers => { 'X-App' => 'one' }, timeout => 30)->{status}, 200, 'one up');
is(http_get(nginx_port(), '/', headers => { 'X-App' => 'two' }, timeout => 30)->{status}, 200, 'two up');
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'three' }, timeout => 30);
is($r->{status}, 200, 'three served although 3 apps were running');
ok(wait_log_line(nginx_error_log(),
    qr/stopping app "one", the least recently used, to make room for app "three", unit \Q${\ app_unit('one')}\E/, timeout => 5),
    'the least recently used idle app (one) was stopped for it (the log names its unit)');
ok(wait_for(sub { unit_active(app_unit('one')) eq 'inactive' }, timeout => 10), 'one is stopped');
is(unit_active(app_unit('two')), 'active', 'two still runs');
is(unit_active(app_unit('pinned')), 'active', 'the keep_warm app is never evicted');

# -- all running apps busy: a new start is refused at once, not queued forever
my $port = nginx_port();
my @busy;
for my $app (qw(two three)) {
    my $pid = fork();
    if ($pid == 0) {
        my $res = http_get($port, '/sleep?ms=4000', headers => { 'X-App' => $app }, timeout => 30);
        exit(($res->{status} // 0) == 200 ? 0 : 1);
    }
    push @busy, $pid;
}
# both slow requests have reached their apps (the units' output goes to the manager's log)
for my $app (qw(two three)) {
    ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr/\b$app\b.*sleeping 4000 ms/, timeout => 10),
        "$app has a request in flight");
}
$r = http_get($port, '/', headers => { 'X-App' => 'one' }, timeout => 30);
is($r->{status}, 503, 'all running apps busy: 503');
ok(defined $r->{headers}{'retry-after'}, 'with Retry-After');
is(scalar(grep { waitpid($_, WNOHANG) == 0 } @busy), 2, 'at once: both busy requests are still in flight');
ok(wait_log_line(nginx_error_log(), qr/app "one" cannot start: 3 apps are running \(ondemand_max_running\) and none is idle, unit \Q${\ app_unit('one')}\E/,
    timeout => 5), 'the reason is in the error log');
for (@busy) { waitpid($_, 0); is($? >> 8, 0, 'the busy request completed') }

done_testing();
