#!/usr/bin/perl
# Fault suite (issue #11, 7): zone records of removed and renamed apps. A 32k ondemand_zone,
# 10 apps per configuration, 10 reloads that rename every app: each reload succeeds and the new
# names answer 200, `nginx -t` agrees with the reload, and the units of apps that no
# configuration uses any more are stopped.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

my ($APPS, $RELOADS) = (10, 10);
sandbox_up();
# one template unit for every app: ondemand-z@NAME.service
install_unit('ondemand-z@.service', <<"EOF2");
[Unit]
Description=ondemand fault-suite app %i
[Service]
Type=simple
ExecStartPre=/bin/mkdir -p ${\ testdir()}/apps/%i
ExecStart=${\ testapp_bin()} --socket ${\ testdir()}/apps/%i/app.sock --name %i
TimeoutStopSec=10
EOF2

# idle_timeout=1h: no app stops by itself during the test, so a removed app's unit stops only
# because no configuration uses it any more.
sub names { my ($r) = @_; map { "r${r}a$_" } 1 .. $APPS }
sub conf_for {
    my ($r) = @_;
    return fault_conf(nginx => { zone => 'ondemand:32k' },
        apps => [ map { ($_ => { unit => "ondemand-z\@$_.service", ondemand => 'idle_timeout=1h' }) } names($r) ]);
}
sub all_served {
    my ($r) = @_;
    my @bg = map { bg_get_many(nginx_port(), '/', 1, headers => { 'X-App' => $_ }, timeout => 30) } names($r);
    my %c;
    $c{ $_->{status} }++ for map { @{ collect($_) } } @bg;
    return \%c;
}

start_helperd();
start_nginx(conf_for(0));
my $c = all_served(0);
is($c->{200} // 0, $APPS, "configuration 0: the $APPS apps answer 200") or diag(fmt_counts($c));

my $first_failure;
for my $r (1 .. $RELOADS) {
    my @conf = conf_for($r);
    my ($t_ok, $t_out) = nginx_t(write_conf(@conf));
    my @old = nginx_workers();
    my ($ok, $line) = raw_reload(@conf);
    $first_failure //= "reload $r: $line" unless $ok;
    is($ok ? 1 : 0, $t_ok ? 1 : 0, "reload $r: nginx -t (" . ($t_ok ? 'ok' : 'refused')
        . ') agrees with the reload (' . ($ok ? 'ok' : 'refused') . ')') or diag($line);
    ok($ok, "reload $r (renames all $APPS apps) succeeds") or diag($line);
    next unless $ok;
    my %old = map { $_ => 1 } @old;
    wait_for(sub { my @w = nginx_workers(); @w == 2 && !grep { $old{$_} } @w }, timeout => 20,
        what => "reload $r: the old workers to exit");
    $c = all_served($r);
    is($c->{200} // 0, $APPS, "reload $r: the $APPS new names answer 200") or diag(fmt_counts($c));
}
diag("first refused reload: $first_failure") if $first_failure;

# apps that no configuration uses any more: their units are stopped
my $last_ok = -1;
for my $r (reverse 0 .. $RELOADS) {
    if (count_log_lines(testdir() . '/access.log', qr/^r${r}a1 .* 200 /)) { $last_ok = $r; last }
}
my %removed = map { ("ondemand-z\@$_.service" => 1) } map { names($_) } grep { $_ != $last_ok } 0 .. $RELOADS;
my @running;
wait_for(sub {
    @running = grep { $removed{$_} } map { (split ' ')[0] // () }
        split /\n/, scalar systemctl('list-units', '--no-legend', '--plain', '--state=active', 'ondemand-z@*');
    !@running
}, timeout => 10,
    what => 'the units of removed apps to stop');
is(scalar(@running), 0, 'the units of apps removed by a reload are stopped')
    or diag(scalar(@running) . ' still active, e.g. ' . $running[0]);
is(unit_active("ondemand-z\@r${last_ok}a1.service"), 'active', 'the apps in use still run')
    if $last_ok >= 0;

done_testing();
