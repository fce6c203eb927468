#!/usr/bin/perl
# helperd under its own hardened units (units/ondemand-helperd.{socket,service} as shipped, with
# only the paths and the bus rewritten for the sandbox): systemd socket-activates it on nginx's
# first connection, and it starts an app (units/ondemand-exec@.service) through the sandbox's
# systemd with all of its sandboxing on. So the hardening is known not to break it.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

sandbox_up();

# A system manager creates /run/systemd/inaccessible/ at boot (the nodes it mounts over what
# ProtectHome=, ProtectKernelTunables=... hide); the sandbox's user manager does not, so the test
# makes them in the manager's mount namespace, as PID 1 would.
my $manager = do { open(my $fh, '<', "$ENV{ONDEMAND_SANDBOX}/manager.pid") or die $!; <$fh> };
chomp $manager;
my ($mk, $mkst) = run_cmd('nsenter', '-t', $manager, '-m', 'sh', '-c',
    'set -e; d=/run/systemd/inaccessible; mkdir -p $d; mkdir -p -m 0 $d/dir; '
  . 'install -m 0 /dev/null $d/reg; mkfifo -m 0 $d/fifo; mknod -m 0 $d/chr c 0 0; '
  . 'mknod -m 0 $d/blk b 0 0; python3 -c "import socket; socket.socket(socket.AF_UNIX).bind(\'$d/sock\')" 2>/dev/null || true; '
  . 'chmod 0 $d/sock 2>/dev/null || true');
is($mkst, 0, 'inaccessible nodes made in the sandbox') or diag($mk);
my $sock = testdir() . '/hd/helperd.sock';
my $bin  = repo_root() . '/build/bin/ondemand-helperd';

sub template {
    my ($file) = @_;
    open(my $fh, '<', repo_root() . "/units/$file") or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

# The sandbox is a user manager: --user instead of --system, test paths instead of /run and
# /usr/local, group root instead of www-data (nginx's workers run as root here). PrivateTmp= is
# off because the sandbox's user bus lives under /tmp; everything else stays as shipped.
my $socket_unit = template('ondemand-helperd.socket');
$socket_unit =~ s{/run/ondemand/helperd\.sock}{$sock}g;
$socket_unit =~ s{SocketGroup=www-data}{SocketGroup=root};
my $service_unit = template('ondemand-helperd.service');
$service_unit =~ s{/usr/local/sbin/ondemand-helperd}{$bin}g;
$service_unit =~ s{/run/ondemand/helperd\.sock}{$sock}g;
$service_unit =~ s{--system}{--user --log-level debug};
$service_unit =~ s{--allow-gid www-data}{--allow-gid 0};
$service_unit =~ s{^PrivateTmp=yes$}{PrivateTmp=no}m;
like($service_unit, qr/^ExecStart=\Q$bin\E --user/m, 'service unit rewritten for the sandbox');
install_unit('ondemand-helperd.socket', $socket_unit);
install_unit('ondemand-helperd.service', $service_unit);
my ($out, $st) = systemctl('start', 'ondemand-helperd.socket');
is($st, 0, 'the socket unit starts') or diag($out);
ok(wait_for(sub { -S $sock }, what => 'helperd socket'), 'systemd listens on the socket');
is(unit_active('ondemand-helperd.service'), 'inactive', 'helperd itself is not running yet');

install_template('ondemand-exec@.service');
write_app_conf('web', EXEC => testapp_bin() . ' --socket $ONDEMAND_SOCKET --name web');

start_nginx(helper => "unix:$sock", http => <<"EOF");
    upstream web {
        server unix:${\ container_socket('web')};
        ondemand unit=ondemand-exec\@web.service start_timeout=20s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app web; proxy_pass http://web; }
    }
EOF

my $r = http_get(nginx_port(), '/x', timeout => 30);
is($r->{status}, 200, 'a cold request through the socket-activated, hardened helperd: 200');
like($r->{body} // '', qr/^app=web pid=\d+ path=\/x$/m, 'answered by the app');
is(unit_active('ondemand-helperd.service'), 'active', 'helperd was socket-activated');
is(unit_active('ondemand-exec@web.service'), 'active', 'the app unit is active');
my $props = systemctl('show', '-p', 'NoNewPrivileges', '-p', 'ProtectSystem',
    '-p', 'CapabilityBoundingSet', '-p', 'RestrictAddressFamilies', 'ondemand-helperd.service');
like($props, qr/^NoNewPrivileges=yes$/m, 'helperd runs with NoNewPrivileges');
like($props, qr/^ProtectSystem=strict$/m, 'helperd runs with ProtectSystem=strict');
like($props, qr/^CapabilityBoundingSet=$/m, 'helperd runs with no capabilities');
like($props, qr/^RestrictAddressFamilies=AF_UNIX$/m, 'helperd may only use unix sockets');

# The app's exec unit: the socket dir was created for it and the app listens there.
ok(-S container_socket('web'), 'the app listens on %t/ondemand/apps/web/app.sock');

done_testing();
