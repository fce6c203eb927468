#!/usr/bin/perl
# Fault suite (issue #11, 1): nginx workers SIGKILLed. The shared counters (in flight, held)
# must survive a worker's death: an app whose long request died with its worker still
# idle-stops, and requests held by a dead worker do not keep the hold queue full.

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
    long => { app => { log_requests => 1 }, ondemand => 'idle_timeout=2s' },
    q2   => { gate => 1, ondemand => 'queue=2 idle_timeout=0' },
]);
my $port = $s->{port};

# -- a long request in flight when the workers die
my $r = http_get($port, '/', headers => { 'X-App' => 'long' }, timeout => 30);
is($r->{status}, 200, 'long: started');
my $bg = bg_get_many($port, '/sleep?ms=60000', 1, headers => { 'X-App' => 'long' }, timeout => 90);
ok(wait_for(sub { app_log_lines('long', qr/sleeping 60000 ms/) }, timeout => 10,
    what => 'the long request to reach the app'), 'a 60 s request is in flight');
my $from = log_size(nginx_error_log());
ok(kill_workers(), 'both workers SIGKILLed and replaced');
my $res = collect($bg);
isnt($res->[0]{status}, 200, 'the long request died with its worker');
my $line = wait_log_line(nginx_error_log(), qr/ondemand: app "long" idle for 2000 ms, stopping/,
    from => $from, timeout => 20);
ok($line, 'after the worker died, the app is idle-stopped (its request no longer counts in flight)');
ok($line && wait_for(sub { unit_active(app_unit('long')) eq 'inactive' }, timeout => 10),
    'and its unit is stopped');

# -- two requests held (queue=2) when the workers die
$bg = bg_get_many($port, '/', 2, headers => { 'X-App' => 'q2' }, timeout => 90);
ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('q2')}\E/, timeout => 10),
    'q2: the start is under way');
ok(wait_held(2), 'q2: two requests held, the queue is full');
$from = log_size(nginx_error_log());
ok(kill_workers(), 'both workers SIGKILLed and replaced');
$res = collect($bg);
is(scalar(grep { $_->{status} eq '200' } @$res), 0, 'the held requests died with their worker');
# (stub_status's counters leak with the killed workers too: count parsed requests instead)
my $base = stub_status($port);
$bg = bg_get_many($port, '/', 1, headers => { 'X-App' => 'q2' }, timeout => 60);
ok(wait_parsed($base, 1), 'a new request for q2, still starting, reached nginx');
open_gate('q2');
$res = collect($bg);
is($res->[0]{status}, 200, 'q2: the new request is held, then served 200 (the queue was freed)');
ok(wait_for(sub { unit_active(app_unit('q2')) eq 'active' && unix_connects(app_socket('q2')) },
    timeout => 20, what => 'q2 to listen'), 'q2: the unit started');
$r = http_get($port, '/', headers => { 'X-App' => 'q2' }, timeout => 30);
is($r->{status}, 200, 'q2 started: a new request is served 200');
my @full = grep { /hold queue is full/ } do {
    open(my $fh, '<', nginx_error_log()) or die; seek($fh, $from, 0); <$fh> };
is(scalar(@full), 0, 'no "hold queue is full" after the workers died')
    or diag($full[0]);
my @q = map { http_get($port, '/', headers => { 'X-App' => 'q2' }, timeout => 30)->{status} } 1 .. 3;
is_deeply(\@q, [200, 200, 200], 'q2: three more requests served 200');

done_testing();
