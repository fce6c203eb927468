#!/usr/bin/perl
# Fault suite (issue #11, 2): a full listen backlog. A burst onto a running app with a small
# backlog, and HTTP/2 herds onto a cold one: every answer 200, no request fails on EAGAIN, and
# EAGAIN never marks the app cold (no "did not accept a connection", no needless START).

use strict;
use warnings;
use Test::More;
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sandbox_up();
my $h2port = free_port();
my $s = fault_stack(h2port => $h2port, apps => [
    warm => { app => { backlog => 8 }, ondemand => 'idle_timeout=0 queue=5000' },
    herd => { app => { backlog => 16, delay_ms => 200 }, ondemand => 'idle_timeout=0 queue=5000' },
]);
my $port = $s->{port};

sub errors_since {
    my ($from, $re) = @_;
    return count_log_lines(nginx_error_log(), $re, from => $from);
}

# -- a burst of 300 connections onto a running app whose backlog is 8
my $r = http_get($port, '/', headers => { 'X-App' => 'warm' }, timeout => 30);
is($r->{status}, 200, 'warm: started');
my $from = log_size(nginx_error_log());
my $h = h2load('--h1', '-n', '1500', '-c', '300', '-H', 'X-App: warm', "http://127.0.0.1:$port/");
is($h->{done}, 1500, 'burst of 1500 requests on 300 connections: all done') or diag($h->{out});
is($h->{'2xx'}, 1500, 'burst on a running backlog-8 app: every answer 200')
    or diag("status codes: 2xx $h->{'2xx'}, 5xx $h->{'5xx'}, failed $h->{failed}");
is(errors_since($from, qr/Resource temporarily unavailable/), 0, 'no connect() EAGAIN error')
    or diag((grep { /temporarily/ } do { open(my $f, '<', nginx_error_log()); <$f> })[0]);
is(errors_since($from, qr/app "warm" did not accept a connection/), 0,
    'the running app is never marked cold');
is(count_log_lines(helperd_log(), qr/: START warm \d/), 1,
    'no needless START of the running app (helperd got one START for it, the first)');

# -- HTTP/2 herds onto a cold app (backlog 16): 2000 streams over 50 connections, 20 each
my $herds = 3;
for my $i (1 .. $herds) {
    $from = log_size(nginx_error_log());
    # the last herd arrives under continuous load on the running app
    my $load;
    if ($i == $herds) {
        $load = fork() // die "fork: $!";
        if ($load == 0) {
            my $l = h2load('--h1', '-n', '3000', '-c', '100', '-H', 'X-App: warm', "http://127.0.0.1:$port/");
            POSIX::_exit(($l->{'2xx'} // 0) == 3000 ? 0 : 1);
        }
    }
    $h = h2load('-n', '2000', '-c', '50', '-m', '20', '-H', 'X-App: herd', "http://127.0.0.1:$h2port/");
    if ($load) {
        waitpid($load, 0);
        is($? >> 8, 0, 'continuous load on the running app during the last herd: 3000 x 200');
    }
    is($h->{'2xx'}, 2000, "h2 herd $i on a cold app: 2000 x 200")
        or diag("status codes: 2xx " . ($h->{'2xx'} // '?') . ", 5xx " . ($h->{'5xx'} // '?')
            . ", failed " . ($h->{failed} // '?'));
    is(errors_since($from, qr/app "herd" did not accept a connection/), 0,
        "h2 herd $i: the app is never marked cold while starting or running");
    last if $i == $herds;
    # make it cold again: stop the unit behind nginx's back, wait for helperd's DOWN
    my $down_from = log_size(nginx_error_log());
    systemctl('stop', app_unit('herd'));
    ok(wait_log_line(nginx_error_log(), qr/app "herd" (went down|stopped)/, from => $down_from,
        timeout => 10), "after herd $i: the app is cold again");
}
is(helperd_start_units(app_unit('herd')), $herds, "one StartUnit per herd ($herds)");
is(count_log_lines(helperd_log(), qr/: START herd \d/), $herds, "one START per herd ($herds)");
is(count_log_lines(nginx_error_log(), qr/Resource temporarily unavailable/), 0,
    'no connect() EAGAIN error in the whole run');

done_testing();
