#!/usr/bin/perl
# Fault suite (issue #11, 6): an abort storm on a cold app. Clients send a request and close at
# once (the FIN arrives with the request). None of those requests may start the app or reach
# it, none keeps a place in the hold queue, and each is logged with a $ondemand_status of its
# own (`abandoned`, not `cold`).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

my $N = 100;
sandbox_up();
my $s = fault_stack(apps => [
    storm => { gate => 1, app => { log_requests => 1 }, ondemand => "idle_timeout=0 queue=$N" },
    left  => { gate => 1, app => { log_requests => 1 }, ondemand => 'idle_timeout=0 queue=5' },
]);
my $port = $s->{port};

my $base = stub_status($port);
my @paths = abort_storm($port, $N, headers => { 'X-App' => 'storm' });
ok(wait_parsed($base, $N), "nginx read all $N aborted requests");
# Their clients had left: none of them starts the app (docs/lifecycle.md, "Faults").
ok(wait_for(sub { access_lines(qr/"GET \/abort-\d+ /) >= $N }, timeout => 20,
    what => 'the aborted requests in the access log'), "all $N aborted requests are logged");
is(helperd_start_units(app_unit('storm')), 0, 'the storm did not start the app');

# The queue (queue=$N) must have room again: patient clients are held, then served.
$base = stub_status($port);
my $patient = bg_get_many($port, '/patient', 5, headers => { 'X-App' => 'storm' }, timeout => 60);
ok(wait_parsed($base, 5), 'five patient clients reached nginx');
ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('storm')}\E/, timeout => 10),
    'the patient clients started the app');
open_gate('storm');
my $c = status_counts(collect($patient));
is($c->{200} // 0, 5, 'after the storm, patient clients are held and served 200 (the queue was freed)')
    or diag(fmt_counts($c) . '; ' . (grep { /hold queue is full/ } do {
        open(my $f, '<', nginx_error_log()); <$f> })[0] // '');

# the patient requests were released after the aborted ones were handled: the app's log is final
my @reached = app_log_lines('storm', qr/ \/abort-\d+$/);
is(scalar(@reached), 0, 'none of the aborted requests reached the app')
    or diag(scalar(@reached) . " of $N reached it, e.g. $reached[0]");
my @logged = access_lines(qr/"GET \/abort-\d+ /);
my @cold = grep { / \d{3} cold \d+$/ } @logged;
is(scalar(@cold), 0, 'no aborted request is logged with $ondemand_status "cold"')
    or diag(scalar(@cold) . " of $N, e.g. $cold[0]");
my @statuses = map { / \d{3} (\S+) \d+$/ ? $1 : '?' } @logged;
my %st; $st{$_}++ for @statuses;
note('aborted requests by $ondemand_status: ' . fmt_counts(\%st));

# Clients that give up while held (after 1 s): each frees its place, is logged `abandoned`, and
# is not sent on when the app is ready.
$base = stub_status($port);
my $quitters = bg_get_many($port, '/left', 5, headers => { 'X-App' => 'left' }, timeout => 1);
ok(wait_parsed($base, 5), 'five clients that will give up reached nginx');
collect($quitters);
ok(wait_for(sub { access_lines(qr/"GET \/left /) >= 5 }, timeout => 20,
    what => 'the quitters in the access log'), 'the five quitters are logged at once');
is(scalar(grep { / 499 abandoned \d+$/ } access_lines(qr/"GET \/left /)), 5,
    'each is logged 499 abandoned');
$base = stub_status($port);
my $stayers = bg_get_many($port, '/stay', 5, headers => { 'X-App' => 'left' }, timeout => 60);
ok(wait_parsed($base, 5), 'five patient clients for the same app reached nginx');
open_gate('left');
is(status_counts(collect($stayers))->{200} // 0, 5, 'they are held (the queue of 5 is free) and served');
is(scalar(app_log_lines('left', qr/ \/left$/)), 0, 'none of the quitters reached the app');

my $r = http_get($port, '/', headers => { 'X-App' => 'storm' }, timeout => 30);
is($r->{status}, 200, 'the app serves the next request');
is(count_log_lines(nginx_error_log(), qr/\[alert\]|exited on signal/), 0, 'no worker crashed');

done_testing();
