#!/usr/bin/perl
# Fault suite (issue #11, 5): the app's main process is SIGKILLed while the app is warm.
# With helperd up, the next request is served by a new process. With helperd down, the first
# request is held rather than answered 502: 503 at the helper deadline if helperd stays away,
# 200 if it comes back.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sandbox_up();
my $s = fault_stack(helper_timeout => '3s', apps => [
    up   => { ondemand => 'idle_timeout=0' },
    down => { ondemand => 'idle_timeout=0' },
    back => { ondemand => 'idle_timeout=0' },
]);
my $port = $s->{port};

sub get { http_get($port, '/', headers => { 'X-App' => $_[0] }, timeout => $_[1] // 30) }

sub warm {
    my ($app) = @_;
    my $r = get($app);
    is($r->{status}, 200, "$app: warm");
    return $r->{headers}{'x-pid'} // 0;
}

sub kill_app {
    my ($app, $pid) = @_;
    ok($pid > 1 && app_main_pid(app_unit($app)) == $pid, "$app: the unit's MainPID is the app ($pid)");
    ok(kill_app_main(app_unit($app)), "$app: main process SIGKILLed, the unit is no longer active");
}

warm($_) for qw(down back);

# -- helperd up
my $old = warm('up');
kill_app('up', $old);
my $from = log_size(nginx_error_log());
my $r = get('up');
is($r->{status}, 200, 'helperd up: the next request gets 200')
    or diag(wait_log_line(nginx_error_log(), qr/app "up"|connect\(\)/, from => $from, timeout => 0.1));
isnt($r->{headers}{'x-pid'} // $old, $old, 'from a new app process');

# -- helperd down, and it stays down
stop_daemon('helperd');
kill_app('down', warm('down'));
$from = log_size(nginx_error_log());
$r = get('down');
is($r->{status}, 503, 'helperd down: the first request is held, then 503 at the helper deadline')
    or diag('nginx said: ' . (wait_log_line(nginx_error_log(), qr/app "down"/, from => $from,
        timeout => 0.1) // 'nothing'));
is(count_log_lines(nginx_error_log(), qr/app "down" did not accept a connection/, from => $from), 0,
    'helperd down: no 502 "did not accept a connection"');
ok(wait_log_line(nginx_error_log(),
    qr/ondemand: helper "unix:\S+" unreachable for 3000 ms, failing 1 held request\(s\) for app "down"/,
    from => $from, timeout => 5), 'the reason is logged: helper unreachable');

# -- helperd down, and it comes back while the request is held
kill_app('back', warm('back'));
$from = log_size(nginx_error_log());
my $base = stub_status($port);
my $bg = bg_get_many($port, '/', 1, headers => { 'X-App' => 'back' }, timeout => 30);
ok(wait_parsed($base, 1), 'back: the request reached nginx');
start_helperd();
my $res = collect($bg);
is($res->[0]{status}, 200, 'helperd back while the request was held: 200')
    or diag('nginx said: ' . (wait_log_line(nginx_error_log(), qr/app "back"/, from => $from,
        timeout => 0.1) // 'nothing'));
is(count_log_lines(nginx_error_log(), qr/app "back" did not accept a connection/, from => $from), 0,
    'back: no "did not accept a connection"');

done_testing();
