#!/usr/bin/perl
# Fault suite (issue #11, 5 of the suite): nginx reloaded (SIGHUP) and upgraded in place
# (USR2, then QUIT of the old master) while requests are held for a starting app: every held
# request, on old and new workers, gets 200.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

my @masters;    # nginx masters this test started outside start_daemon (daemonized)
END {
    for my $pid (@masters) {
        next if $pid <= 1 || pid_gone($pid);
        signal_pids('QUIT', $pid);
        wait_for(sub { pid_gone($pid) }, timeout => 15) or signal_pids('KILL', $pid);
    }
}

my $N = 50;
sandbox_up();
my $s = fault_stack(apps => [
    rl => { gate => 1, ondemand => 'idle_timeout=0' },
    up => { gate => 1, ondemand => 'idle_timeout=0' },
]);
my $port = $s->{port};

# -- reload with requests held on the old workers, then more held on the new ones
my $old = bg_get_many($port, '/', $N, headers => { 'X-App' => 'rl' }, timeout => 60);
ok(wait_held($N), "reload: $N requests held");
my ($ok, $line) = raw_reload(@{ $s->{conf} });
ok($ok, 'reload: new workers started') or diag($line);
my $new = bg_get_many($port, '/', $N, headers => { 'X-App' => 'rl' }, timeout => 60);
ok(wait_held(2 * $N), "reload: $N more held by the new workers");
open_gate('rl');
my $c = status_counts(collect($old));
is($c->{200} // 0, $N, "reload: the $N requests held across it get 200") or diag(fmt_counts($c));
$c = status_counts(collect($new));
is($c->{200} // 0, $N, "reload: the $N requests held after it get 200") or diag(fmt_counts($c));
ok(wait_for(sub { nginx_workers() == 2 }, timeout => 20), 'reload: the old workers exited');

# -- binary upgrade. A master whose parent never changes ignores USR2 (nginx's check that the
#    old binary still runs), so this part runs nginx as a daemon, as in production.
stop_daemon('nginx', timeout => 30);
my $pidfile = nginx_dir() . '/nginx.pid';
unlink $pidfile;
my ($out, $status) = run_cmd('/usr/sbin/nginx', '-p', nginx_dir(), '-c', nginx_dir() . '/nginx.conf');
is($status, 0, 'nginx started as a daemon') or diag($out);
my $master;
ok(wait_for(sub { $master = _pid($pidfile) and tcp_connects($port) }, timeout => 10),
    'the daemon listens');
push @masters, $master if $master > 1;
die 'no nginx master pid' unless $master > 1;
ok(wait_for(sub { nginx_workers($master) == 2 }, timeout => 10), 'with two workers');

$old = bg_get_many($port, '/', $N, headers => { 'X-App' => 'up' }, timeout => 60);
ok(wait_held($N), "upgrade: $N requests held by the old binary");
my $from = log_size(nginx_error_log());
signal_pids('USR2', $master);
my $newmaster;
ok(wait_for(sub {
    $newmaster = _pid($pidfile);
    $newmaster && $newmaster != $master && -e "$pidfile.oldbin" && nginx_workers($newmaster) == 2
}, timeout => 20, what => 'the new binary and its workers'), 'USR2: the new master runs, with two workers')
    or diag(`tail -5 ${\ nginx_error_log()}`);
push @masters, $newmaster if $newmaster && $newmaster > 1 && $newmaster != $master;
$new = bg_get_many($port, '/', $N, headers => { 'X-App' => 'up' }, timeout => 60);
signal_pids('QUIT', $master);
open_gate('up');
$c = status_counts(collect($old));
is($c->{200} // 0, $N, "upgrade: the $N requests held by the old binary get 200") or diag(fmt_counts($c));
$c = status_counts(collect($new));
is($c->{200} // 0, $N, "upgrade: the $N requests sent during it get 200") or diag(fmt_counts($c));
ok(wait_for(sub { pid_gone($master) }, timeout => 30), 'the old master exited');
my $r = http_get($port, '/', headers => { 'X-App' => 'up' }, timeout => 30);
is($r->{status}, 200, 'after the upgrade: served by the new binary');
is(count_log_lines(nginx_error_log(), qr/\[alert\]|\[crit\]|exited on signal/, from => $from), 0,
    'no alert, no crash') or diag(`grep -E 'alert|crit|exited on signal' ${\ nginx_error_log()} | tail -3`);

sub _pid {
    my ($f) = @_;
    open(my $fh, '<', $f) or return 0;
    my $p = <$fh> // return 0;
    return $p =~ /^(\d+)/ ? $1 : 0;
}

done_testing();
