#!/usr/bin/perl
# systemd inside a podman container, end to end: units/ondemand-podman-systemd@.service as shipped
# runs a Debian 12 image with systemd as its init (scripts/image/build-systemd: mmdebstrap, cached
# in build/image-systemd) whose ondemand-testapp.service (Type=notify) serves the socket.
#   readiness   the unit is active only once the app inside serves: the app waits 1 s before it
#               listens, and nginx uses ready=notify (no connect probe), so a 200 on the first
#               request means that READY=1 went app -> inner systemd -> podman -> the unit;
#   warm        no helperd traffic;
#   idle stop   podman stop sends SIGRTMIN+3, the inner systemd stops its units (the app removes
#               its socket) and exits 0: read from the container's own journal (kept on a volume)
#               and podman's events, not timed;
#   killed      podman kill, then conmon killed by PID: the unit goes down, nginx hears it, and
#               the next request starts the app again.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;
use Time::HiRes qw(time);

plan skip_all => 'podman is not installed' unless -x '/usr/bin/podman';
plan skip_all => 'mmdebstrap is not installed (apt-get install mmdebstrap)'
    unless grep { -x "$_/mmdebstrap" } split /:/, $ENV{PATH};

my $t0 = time;
sandbox_up();
podman_setup(image => 0);
my ($image, $built) = systemd_image('localhost/ondemand-testapp-systemd:latest');
plan skip_all => "no systemd image: $built" unless $image;
diag(sprintf 'systemd image ready in %.1f s%s', time - $t0,
    $built =~ /(built \S+ in \d+ s)/ ? " ($1)" : ' (cached)');
install_template('ondemand-podman-systemd@.service');

my $app = 'psd';
my $unit = "ondemand-podman-systemd\@$app.service";
# The container's journal (its systemd's and its app's messages) on a volume of the test's, which
# outlives the container (--rm removes it with everything in it): journald inside keeps it in
# /var/log/journal when that directory exists.
my $journal = testdir() . "/$app-journal";
mkdir $journal or die "$journal: $!";
write_app_conf($app, IMAGE => $image,
    ARGS => "-e TESTAPP_NAME=$app -e TESTAPP_DELAY_MS=1000 -v $journal:/var/log/journal");
start_helperd();
start_nginx(http => <<~"EOF");
    upstream $app {
        server unix:${\ container_socket($app)};
        ondemand unit=$unit ready=notify start_timeout=60s idle_timeout=4s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app $app; proxy_pass http://$app; }
    }
    EOF

my $get = sub { http_get(nginx_port(), $_[0], timeout => 70) };
my $running = sub { scalar grep { $_ eq "ondemand-$app" } split /\n/, (podman('ps', '--format', '{{.Names}}'))[0] };
# the inner journal's messages, in order
my $journal_text = sub { (run_cmd('journalctl', '--directory', $journal, '--no-pager', '-o', 'cat'))[0] };
# podman's "died" events for the container, as exit codes, oldest first
my $exit_codes = sub {
    my ($out) = podman('events', '--stream=false', '--filter', "container=ondemand-$app",
        '--filter', 'event=died', '--format', '{{.ContainerExitCode}}');
    return [ $out =~ /^(-?\d+)$/mg ];
};

# -- cold, with readiness through the inner systemd
is(unit_active($unit), 'inactive', 'not running before the first request');
my $cold = $get->('/cold');
is($cold->{status}, 200, 'cold request (ready=notify, app listens after 1 s): 200');
like($cold->{body} // '', qr/^app=\Q$app\E pid=(\d+) path=\/cold$/m, 'answered by the app');
my ($pid) = ($cold->{body} // '') =~ /pid=(\d+)/;
isnt($pid, 1, 'the app is not PID 1 of its container: systemd is');
cmp_ok($cold->{elapsed}, '>=', 1, 'the answer waited for the app (its 1 s start-up)');
diag(sprintf 'cold start answered in %.0f ms (1000 ms of it the app\'s own delay)', $cold->{elapsed} * 1000);
is(unit_active($unit), 'active', 'the unit is active');
is($running->(), 1, 'podman runs the container');

# -- warm: no helperd traffic
my $from = log_size(helperd_log());
my $warm = $get->('/warm');
is($warm->{status}, 200, 'warm request: 200');
is(count_log_lines(helperd_log(), qr/\b(START|WAIT)\b/, from => $from), 0,
    'warm request: helperd received nothing');

# -- idle stop: the inner systemd shuts down cleanly
my $mfrom = log_size($ENV{ONDEMAND_SANDBOX_LOG});
my $died = @{ $exit_codes->() };
ok(wait_log_line(helperd_log(), qr/app \Q$app\E stopped/, from => $from, timeout => 30),
    'stopped after its idle timeout');
is(unit_active($unit), 'inactive', 'the unit is inactive after the idle stop');
ok(!$running->(), 'the container is gone');
ok(!-S container_socket($app), 'its socket is removed');
my $codes = $exit_codes->();
is(scalar(@$codes), $died + 1, 'podman saw the container die once');
is($codes->[-1], 0, 'the container exited 0: its systemd shut down, not SIGKILLed');
my $jt = $journal_text->();
like($jt, qr/Reached target.*Multi-User System.*Stopping.*ondemand test app/s,
    'inner journal: booted, then the inner systemd stopped the app unit');
like($jt, qr/removed socket/, 'inner journal: the app removed its socket on SIGTERM');
like($jt, qr/Stopped.*ondemand test app/, 'inner journal: the app unit stopped');
unlike($jt, qr/ondemand-testapp\.service: (State 'stop-sigterm' timed out|Killing process)/,
    'inner journal: no SIGKILL of the app');
is(count_log_lines($ENV{ONDEMAND_SANDBOX_LOG}, qr/resorting to SIGKILL|timed out. Killing/, from => $mfrom), 0,
    'no SIGKILL after a timeout (podman stop, systemd)');

# -- killed from outside: podman kill, then conmon by PID
for my $how ('podman kill', 'kill -9 conmon') {
    my $r = $get->('/before');
    is($r->{status}, 200, "$how: the app runs again on a request");
    $from = log_size(helperd_log());
    my $nfrom = log_size(nginx_error_log());
    if ($how eq 'podman kill') {
        my ($out, $st) = podman('kill', "ondemand-$app");
        is($st, 0, 'podman kill from outside') or diag($out);
    } else {
        my ($cpid) = podman('inspect', '--format', '{{.State.ConmonPid}}', "ondemand-$app") =~ /(\d+)/;
        ok($cpid && kill('KILL', $cpid), "conmon (PID @{[ $cpid // '?' ]}) killed");
    }
    ok(wait_for(sub { unit_active($unit) =~ /^(inactive|failed)$/ }, timeout => 30,
        what => "$unit to go down"), "$how: the unit goes down");
    ok(wait_log_line(nginx_error_log(), qr/ondemand: app "\Q$app\E" went down/, from => $nfrom,
        timeout => 10), "$how: nginx hears that the app went down");
    ok(wait_for(sub { !$running->() }, timeout => 30, what => 'container gone'),
        "$how: the container is gone");
    my $again = $get->('/again');
    is($again->{status}, 200, "$how: the next request starts it again: 200");
    is(helperd_start_units($unit, from => $from), 1, "$how: with one new StartUnit");
}

diag(sprintf 'wall time %.1f s', time - $t0);
done_testing();
