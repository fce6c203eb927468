#!/usr/bin/perl
# A running app that stops accepting (its process SIGSTOPped: the listen backlog fills and
# stays full). Requests retry connect() on EAGAIN until proxy_connect_timeout and get 504
# (those already in the backlog wait for proxy_read_timeout, also 504): none gets 502, and
# neither EAGAIN nor a timeout makes the app cold. Once the process goes on, the next request
# is warm and nothing was started again (issue #11, item 2).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sandbox_up();
my $s = fault_stack(apps => [
    stall => { app => { backlog => 2 }, ondemand => 'idle_timeout=0' },
], locations => <<'EOF2');
        location /ct { ondemand_app $http_x_app; proxy_pass http://$http_x_app;
                       proxy_connect_timeout 1s; proxy_read_timeout 2s; }
EOF2
my $port = $s->{port};
my %stall = (headers => { 'X-App' => 'stall' }, timeout => 60);

is(http_get($port, '/ct', %stall)->{status}, 200, 'stall: started');
my $pid = app_main_pid(app_unit('stall'));
ok($pid > 1, "stall: main pid $pid");
my $from = log_size(nginx_error_log());
ok(signal_pids('STOP', $pid), 'stall: SIGSTOPped (accepts nothing, its backlog of 2 fills)');

my $res = http_get_many($port, '/ct', 20, %stall);
my %st;
$st{ $_->{status} // 'none' }++ for @$res;
is($st{504} // 0, 20, '20 requests onto the stopped app: all 504 (connect or read timeout), none 502')
    or diag(join(', ', map { "$_: $st{$_}" } sort keys %st));
is(count_log_lines(nginx_error_log(), qr/app "stall" is not running/, from => $from), 0,
    'EAGAIN and timeouts never make the app cold');
is(count_log_lines(nginx_error_log(), qr/Resource temporarily unavailable/, from => $from), 0,
    'no connect() EAGAIN error logged');

ok(signal_pids('CONT', $pid), 'stall: SIGCONT');
my $r = http_get($port, '/ct', %stall);
is($r->{status}, 200, 'the next request: 200');
is($r->{headers}{'x-pid'}, $pid, 'from the same process');
ok(wait_for(sub { grep { /^stall .* 200 warm / } access_lines() }, timeout => 5),
    'and it was warm ($ondemand_status)');
is(count_log_lines(helperd_log(), qr/: START stall \d/), 1, 'helperd got one START for the app, the first');

done_testing();
