#!/usr/bin/perl
# Fault suite (issue #11, 3 and 4): helperd dies while 100 requests are held for a starting
# app. A graceful restart (SIGTERM, then a supervisor starts it again on the same socket) and a
# crash (SIGKILL) followed by a restart within ondemand_helper_timeout are ridden out: every
# held request gets 200. A helperd that stays away: 503 at the helper deadline, with the reason.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

my $N = 100;
# delays (s) between helperd's death and its restart; the helper timeout is 5 s
my @delays = (0.5, 2.5, 3.5, 4.0, 4.5);
my @rounds = (['term', 'TERM', 0.2], map { [ "kill$_", 'KILL', $delays[$_] ] } 0 .. $#delays);

sandbox_up();
my $s = fault_stack(helper_timeout => '5s', apps => [
    (map { ($_->[0] => { gate => 1, ondemand => 'idle_timeout=0' }) } @rounds),
    gone => { gate => 1, ondemand => 'idle_timeout=0' },
]);
my $port = $s->{port};

for my $round (@rounds) {
    my ($app, $signal, $delay) = @$round;
    my $from = log_size(nginx_error_log());
    my $bg = bg_get_many($port, '/', $N, headers => { 'X-App' => $app }, timeout => 60);
    ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit($app)}\E/, timeout => 10),
        "$app: the start is under way");
    ok(wait_held($N), "$app: $N requests held");
    restart_helperd(signal => $signal, delay => $delay);
    # helperd is back; let the app finish starting
    open_gate($app);
    my $c = status_counts(collect($bg));
    is($c->{200} // 0, $N, "SIG$signal, helperd back after ${delay}s: all $N held requests 200")
        or diag(fmt_counts($c) . '; nginx said: '
            . (wait_log_line(nginx_error_log(), qr/ondemand: (app "$app"|helper \S+ unreachable.*"$app")/, from => $from,
                timeout => 0.1) // 'nothing'));
}

# -- helperd killed and not restarted: 503 at the helper deadline, with the logged reason
my $from = log_size(nginx_error_log());
my $bg = bg_get_many($port, '/', $N, headers => { 'X-App' => 'gone' }, timeout => 60);
ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('gone')}\E/, timeout => 10),
    'gone: the start is under way');
ok(wait_held($N), "gone: $N requests held");
kill_helperd('KILL');
my $res = collect($bg);
my $c = status_counts($res);
is($c->{503} // 0, $N, "helperd killed, not restarted: all $N held requests 503") or diag(fmt_counts($c));
ok(wait_log_line(nginx_error_log(),
    qr/ondemand: helper "unix:\S+" unreachable for 5000 ms, failing \d+ held request\(s\) for app "gone"/,
    from => $from, timeout => 5), 'the error log gives the reason: helper unreachable for 5000 ms');

done_testing();
