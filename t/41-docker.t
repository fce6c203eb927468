#!/usr/bin/perl
# Real docker containers end to end, through nginx + helperd + the sandbox's systemd, with
# units/ondemand-docker@.service as shipped, against a private dockerd (own data and exec roots,
# containerd namespace and cgroup parent, no iptables, no bridge; stopped by PID at the end).
# Cold start, warm request (no helperd traffic), the container killed from outside (helperd pushes
# DOWN, the next request starts it again), idle stop (the container is gone), and an app whose
# image is missing: a prompt 502 and a clear reason.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

plan skip_all => 'docker is not installed' unless -x '/usr/bin/docker' && -x '/usr/sbin/dockerd';

sandbox_up();
start_dockerd();
install_template('ondemand-docker@.service');

my %shape = (dk => 'ondemand-docker');
for my $app (sort keys %shape) {
    write_app_conf($app, IMAGE => docker_image_name(),
        CMD => "/bin/ondemand-testapp --socket /run/ondemand/app.sock --name $app");
}
write_app_conf('noimg', IMAGE => 'ondemand-nosuch:latest',
    CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name noimg');
start_helperd();

sub unit_of { my ($app) = @_; "ondemand-docker\@$app.service" }

my $upstreams = '';
for my $app (qw(dk noimg)) {
    $upstreams .= <<"EOF";
    upstream $app {
        server unix:${\ container_socket($app)};
        ondemand unit=${\ unit_of($app)} start_timeout=30s idle_timeout=3s;
    }
EOF
}
start_nginx(http => <<"EOF");
$upstreams
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF

sub get { http_get(nginx_port(), $_[1] // '/', headers => { 'X-App' => $_[0] }, timeout => 40) }
sub running_containers { scalar grep { /^ondemand-\Q$_[0]\E$/ } split /\n/, docker('ps', '--format', '{{.Names}}') }

for my $app (sort keys %shape) {
    my $unit = unit_of($app);
    my $what = "$shape{$app}\@.service";

    # -- cold
    is(unit_active($unit), 'inactive', "$what: not running before the first request");
    my $cold = get($app, '/cold');
    is($cold->{status}, 200, "$what: cold request: 200");
    like($cold->{body} // '', qr/^app=\Q$app\E pid=1 path=\/cold$/m,
        "$what: answered by the app as PID 1 of its container");
    is(unit_active($unit), 'active', "$what: the unit is active");
    is(running_containers($app), 1, "$what: dockerd runs the container");
    diag(sprintf "%s: cold start answered in %.0f ms", $what, $cold->{elapsed} * 1000);

    # -- warm: no helperd traffic
    my $from = log_size(helperd_log());
    my $warm = get($app, '/warm');
    is($warm->{status}, 200, "$what: warm request: 200");
    like($warm->{body} // '', qr/path=\/warm/, "$what: warm request reaches the app");
    is(count_log_lines(helperd_log(), qr/\b(START|WAIT)\b/, from => $from), 0,
        "$what: warm request: helperd received nothing");

    # -- killed from outside: helperd pushes DOWN, the next request starts it again
    $from = log_size(helperd_log());
    my $nfrom = log_size(nginx_error_log());
    my ($out, $st) = docker('kill', "ondemand-$app");
    is($st, 0, "$what: docker kill from outside") or diag($out);
    ok(wait_for(sub { unit_active($unit) =~ /^(inactive|failed)$/ }, timeout => 20,
        what => "$unit to go down"), "$what: the unit goes down with its container");
    ok(wait_log_line(nginx_error_log(), qr/ondemand: app "\Q$app\E" went down/, from => $nfrom,
        timeout => 10), "$what: nginx hears that the app went down");
    my $again = get($app, '/again');
    is($again->{status}, 200, "$what: the next request starts it again: 200");
    is(helperd_start_units($unit, from => $from), 1, "$what: with one new StartUnit");
    is(unit_active($unit), 'active', "$what: the unit is active again");

    # -- idle stop: the container is stopped and removed
    $from = log_size(helperd_log());
    ok(wait_log_line(helperd_log(), qr/app \Q$app\E stopped/, from => $from, timeout => 20),
        "$what: stopped after its idle timeout");
    is(unit_active($unit), 'inactive', "$what: the unit is inactive after the idle stop");
    ok(wait_for(sub { !running_containers($app) }, timeout => 10, what => 'container gone'),
        "$what: the container is gone");
    ok(!-S container_socket($app), "$what: its socket is removed");
    my $after = get($app, '/after-idle');
    is($after->{status}, 200, "$what: a request after the idle stop starts it again");
}

# -- the image is missing: a prompt 502, and the error log says why
my $nfrom = log_size(nginx_error_log());
my $r = get('noimg');
is($r->{status}, 502, 'missing image: 502');
cmp_ok($r->{elapsed}, '<', 10, 'missing image: answered at once, not at the start timeout');
my $line = wait_log_line(nginx_error_log(), qr/ondemand: app "noimg" failed to start/,
    from => $nfrom, timeout => 5);
ok($line, 'missing image: the error log says the app failed to start');
diag("reason logged: $line") if $line;
is((run_cmd('systemctl', '--user', 'show', '-p', 'StatusText', '--value', unit_of('noimg')))[0],
    "image ondemand-nosuch:latest not found (pull it first; PULL=never)\n",
    "missing image: the unit's status text names the image");
like($line // '', qr/status: image ondemand-nosuch:latest not found \(pull it first; PULL=never\)/,
    'missing image: the reason in the error log names the image (the unit\'s StatusText)');

done_testing();
