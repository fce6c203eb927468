#!/usr/bin/perl
# helperd under its own hardened units (units/ondemand-helperd.{socket,service} as shipped, with
# only the paths and the bus rewritten for the sandbox): systemd socket-activates it on nginx's
# first connection, and it starts an app (units/ondemand-exec@.service) through the sandbox's
# systemd with all of its sandboxing on. So the hardening is known not to break it.
# Also: the shipped settings are there (User=ondemand, LimitNOFILE, MemoryMax, TasksMax,
# WatchdogSec, ExecReload, --config), helperd reads its config file (units/helperd.toml, as
# install.sh installs it), `systemctl reload` re-reads it (same PID, new settings in force), and
# the watchdog keeps helperd running (WATCHDOG=1 pings, no restart). The key nginx and helperd
# share (issue #12) reaches helperd as the systemd credential helperd.key (LoadCredential=,
# --key-file=${CREDENTIALS_DIRECTORY}/helperd.key), and nginx's workers authenticate with it
# through all of the hardening (ProtectProc=default lets helperd read their /proc/PID/stat).
#
# User=ondemand is the one shipped setting the test bed cannot keep: the sandbox is a *user*
# manager running as root, and a helperd running as another uid could neither join root's user
# bus (dbus-daemon's session policy admits the bus owner's uid only) nor be authorised by the
# user manager (polkit is not consulted there, and there is no polkitd on this machine). So the
# test asserts the shipped User=/Group=/SupplementaryGroups= and runs helperd as root, as the
# opt-in units/ondemand-helperd.service.d/root.conf would (installed here as that drop-in).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;
use File::Path qw(make_path);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

sandbox_up();

# A system manager creates /run/systemd/inaccessible/ at boot (the nodes it mounts over what
# ProtectHome=, ProtectKernelTunables=... hide); scripts/sandbox makes them in the manager's mount
# namespace, as PID 1 would.
my $manager = do { open(my $fh, '<', "$ENV{ONDEMAND_SANDBOX}/manager.pid") or die $!; <$fh> };
chomp $manager;
my ($mk, $mkst) = run_cmd('nsenter', '-t', $manager, '-m', 'sh', '-c',
    'd=/run/systemd/inaccessible; test -d $d/dir && test -f $d/reg && test -p $d/fifo && '
  . 'test -c $d/chr && test -b $d/blk');
is($mkst, 0, 'the sandbox has the inaccessible nodes') or diag($mk);
my $sock = testdir() . '/hd/helperd.sock';
my $bin  = repo_root() . '/build/bin/ondemand-helperd';

sub write_file {
    my ($file, $text) = @_;
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $text;
    close $fh or die "$file: $!";
}

sub template {
    my ($file) = @_;
    open(my $fh, '<', repo_root() . "/units/$file") or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

# The shipped unit, before any rewriting.
my $shipped = template('ondemand-helperd.service');
like($shipped, qr/^User=ondemand$/m, 'shipped: runs as the system user ondemand');
like($shipped, qr/^Group=ondemand$/m, 'shipped: with its group');
like($shipped, qr{^ExecStart=/usr/local/sbin/ondemand-helperd --system --config /etc/ondemand/helperd\.toml --key-file=\$\{CREDENTIALS_DIRECTORY\}/helperd\.key$}m,
    'shipped: reads /etc/ondemand/helperd.toml, and the key from its credential');
like($shipped, qr{^LoadCredential=helperd\.key:/etc/ondemand/helperd\.key$}m,
    'shipped: the credential helperd.key is /etc/ondemand/helperd.key');
like($shipped, qr{^ProtectProc=default$}m, "shipped: /proc shows the peers' processes");
like($shipped, qr{^ExecReload=/bin/kill -HUP \$MAINPID$}m, 'shipped: reload is SIGHUP');
like($shipped, qr/^LimitNOFILE=65536$/m, 'shipped: LimitNOFILE=65536');
like($shipped, qr/^MemoryMax=\S+$/m, 'shipped: MemoryMax');
like($shipped, qr/^TasksMax=\d+$/m, 'shipped: TasksMax');
like($shipped, qr/^WatchdogSec=30s$/m, 'shipped: WatchdogSec=30s');
my $root_dropin = template('ondemand-helperd.service.d/root.conf');
like($root_dropin, qr/^User=$/m, 'the root opt-in resets User=');

# The sandbox is a user manager: --user instead of --system, test paths instead of /run, /etc
# and /usr/local, group root instead of www-data (nginx's workers run as root here). PrivateTmp=
# is off because the sandbox's user bus lives under /tmp; the shipped User= is reset by the root
# drop-in (above); WatchdogSec= is shortened to 2 s in a second drop-in so that the test sees
# several pings in a few seconds. Everything else stays as shipped.
my $conf = testdir() . '/hd/helperd.toml';
my $toml = template('helperd.toml');
like($toml, qr/^allow_gids = \["www-data"\]$/m, 'shipped config: nginx\'s group www-data');
like($toml, qr/^allow_uids = \[0\]$/m, 'shipped config: and root (ondemandctl)');
$toml =~ s{^allow_gids = \["www-data"\]$}{allow_gids = [0]}m;
$toml =~ s{^log_level = "info"$}{log_level = "debug"}m;
# The registry: the shipped /etc/ondemand/apps is the user manager's %E/ondemand/apps here; the
# sockets' directory is the manager's %t/ondemand/apps, helperd's default under --user.
like($toml, qr{^apps_dir = "/etc/ondemand/apps"$}m, 'shipped config: the app registry');
$toml =~ s{^apps_dir = "/etc/ondemand/apps"$}{apps_dir = "${\ conf_dir()}/apps"}m;
make_path(testdir() . '/hd');
write_file($conf, $toml);
my $socket_unit = template('ondemand-helperd.socket');
$socket_unit =~ s{/run/ondemand/helperd\.sock}{$sock}g;
$socket_unit =~ s{SocketGroup=www-data}{SocketGroup=root};
my $service_unit = $shipped;
$service_unit =~ s{/usr/local/sbin/ondemand-helperd}{$bin}g;
$service_unit =~ s{/etc/ondemand/helperd\.toml}{$conf}g;
my $key_file = testdir() . '/hd/helperd.key';
write_file($key_file, "00112233445566778899aabbccddeeff" x 2 . "\n");
chmod 0600, $key_file;
$service_unit =~ s{/etc/ondemand/helperd\.key}{$key_file}g;
# The sandbox's manager cannot hand out credentials: it runs in a mount namespace with private
# propagation, so the credential mount systemd makes in a child namespace never shows up in the
# unit's (the directory stays empty; SetCredential= alike). So LoadCredential= is replaced by
# CREDENTIALS_DIRECTORY pointing at a directory holding helperd.key: ExecStart= and helperd
# still read the key the shipped way, ${CREDENTIALS_DIRECTORY}/helperd.key.
like($service_unit, qr{^LoadCredential=helperd\.key:\Q$key_file\E$}m, 'the credential names the key file');
my $creds = testdir() . '/hd/credentials';
make_path($creds);
chmod 0700, $creds;
write_file("$creds/helperd.key", "00112233445566778899aabbccddeeff" x 2 . "\n");
chmod 0400, "$creds/helperd.key";
$service_unit =~ s{^LoadCredential=.*$}{Environment=CREDENTIALS_DIRECTORY=$creds}m;
$service_unit =~ s{--system}{--user};
$service_unit =~ s{^PrivateTmp=yes$}{PrivateTmp=no}m;
like($service_unit, qr/^ExecStart=\Q$bin\E --user --config \Q$conf\E --key-file=\$\{CREDENTIALS_DIRECTORY\}\/helperd\.key$/m,
    'service unit rewritten for the sandbox');
make_path("$ENV{ONDEMAND_SANDBOX_UNITS}/ondemand-helperd.service.d");
write_file("$ENV{ONDEMAND_SANDBOX_UNITS}/ondemand-helperd.service.d/root.conf", $root_dropin);
write_file("$ENV{ONDEMAND_SANDBOX_UNITS}/ondemand-helperd.service.d/zz-test-watchdog.conf",
    "[Service]\nWatchdogSec=2s\n");
install_unit('ondemand-helperd.socket', $socket_unit);
install_unit('ondemand-helperd.service', $service_unit);
my ($out, $st) = systemctl('start', 'ondemand-helperd.socket');
is($st, 0, 'the socket unit starts') or diag($out);
ok(wait_for(sub { -S $sock }, what => 'helperd socket'), 'systemd listens on the socket');
is(unit_active('ondemand-helperd.service'), 'inactive', 'helperd itself is not running yet');

install_template('ondemand-exec@.service');
write_app_conf('web', EXEC => testapp_bin() . ' --socket $ONDEMAND_SOCKET --name web');

start_nginx(helper => "unix:$sock key=$key_file", http => <<"EOF");
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
ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr/clients must authenticate: HELLO with the key of \S+\/helperd\.key/,
    timeout => 5), 'helperd has the key, from its credential');
ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr/client \d+ belongs to instance nginx-\S+ \(key checked\)/,
    timeout => 5), "nginx's workers authenticated (their parent pid read through ProtectProc=default)");
is(unit_active('ondemand-exec@web.service'), 'active', 'the app unit is active');
my $props = systemctl('show', '-p', 'NoNewPrivileges', '-p', 'ProtectSystem',
    '-p', 'CapabilityBoundingSet', '-p', 'RestrictAddressFamilies', 'ondemand-helperd.service');
like($props, qr/^NoNewPrivileges=yes$/m, 'helperd runs with NoNewPrivileges');
like($props, qr/^ProtectSystem=strict$/m, 'helperd runs with ProtectSystem=strict');
like($props, qr/^CapabilityBoundingSet=$/m, 'helperd runs with no capabilities');
like($props, qr/^RestrictAddressFamilies=AF_UNIX$/m, 'helperd may only use unix sockets');

ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr{app registry: 1 app\(s\) from \Q${\ conf_dir()}\E/apps/\*\.conf},
    timeout => 1), 'helperd serves the apps of the app files');
{
    # An app without an app file, on a unit that is allowed: refused, nothing started.
    # (authenticated first: the shipped helperd requires the key)
    open(my $kf, '<', $key_file) or die "$key_file: $!";
    chomp(my $key = <$kf>);
    close $kf;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock) or die "$sock: $!";
    print $c "HELLO t42-probe key=$key\n";
    print $c "START ghost 1 ondemand-exec\@ghost.service connect 1000 /run/x.sock\n";
    $c->flush;
    my $reply = <$c>;
    like($reply // '', qr/^FAILED ghost 1 not-allowed unknown app ghost$/,
        'an app without an app file is refused');
}

# The app's exec unit: the socket dir was created for it and the app listens there.
ok(-S container_socket('web'), 'the app listens on %t/ondemand/apps/web/app.sock');

# The settings in force for the unit.
$props = systemctl('show', '-p', 'LimitNOFILE', '-p', 'MemoryMax', '-p', 'TasksMax',
    '-p', 'WatchdogUSec', '-p', 'User', '-p', 'ExecReload', 'ondemand-helperd.service');
like($props, qr/^LimitNOFILE=65536$/m, 'LimitNOFILE=65536 in force');
like($props, qr/^MemoryMax=268435456$/m, 'MemoryMax=256M in force');
like($props, qr/^TasksMax=32$/m, 'TasksMax=32 in force');
like($props, qr/^WatchdogUSec=2s$/m, 'the watchdog is on (2 s here)');
like($props, qr/^User=$/m, 'User= reset by the root drop-in (see the top of this file)');
like($props, qr/kill -HUP/, 'ExecReload sends SIGHUP');
my $pid = systemctl('show', '-p', 'MainPID', '--value', 'ondemand-helperd.service');
chomp $pid;
ok($pid > 0, "helperd's main PID $pid");
my $log = $ENV{ONDEMAND_SANDBOX_LOG};
ok(wait_log_line($log, qr/watchdog: WATCHDOG=1 every 1000 ms/, timeout => 10),
    'helperd pings the watchdog at half of WatchdogSec');
ok(wait_log_line($log, qr/ready/, timeout => 1), 'helperd said ready');

# Reload: a changed config file is in force after `systemctl reload`, same process.
$toml =~ s{^allow_units = \["ondemand-\*\.service"\]$}{allow_units = ["ondemand-*.service", "extra-*.service"]}m;
write_file($conf, $toml);
($out, $st) = systemctl('reload', 'ondemand-helperd.service');
is($st, 0, 'systemctl reload ondemand-helperd.service') or diag($out);
ok(wait_log_line($log, qr/reloaded: 2 unit glob\(s\), 1 uid\(s\), 1 gid\(s\)/, timeout => 10),
    'helperd re-read its config file (2 unit globs now)');
is(unit_active('ondemand-helperd.service'), 'active', 'and is still active');
my $pid2 = systemctl('show', '-p', 'MainPID', '--value', 'ondemand-helperd.service');
chomp $pid2;
is($pid2, $pid, 'the same process (a reload, not a restart)');
# A broken file: the reload keeps the settings in force.
write_file($conf, "allow_units = 3\n");
($out, $st) = systemctl('reload', 'ondemand-helperd.service');
is($st, 0, 'reload with a broken config file') or diag($out);
ok(wait_log_line($log, qr/reload failed: keeping the settings in force/, timeout => 10),
    'a broken file keeps the settings in force');
write_file($conf, $toml);

# The watchdog keeps it alive: 5 s = 2.5 WatchdogSec intervals later, still the same process,
# never restarted, and the request path still works.
sleep 5;
is(unit_active('ondemand-helperd.service'), 'active', 'after 2.5 watchdog intervals: active');
my $after = systemctl('show', '-p', 'MainPID', '-p', 'NRestarts', '-p', 'Result',
    'ondemand-helperd.service');
like($after, qr/^MainPID=$pid$/m, 'the same process');
like($after, qr/^NRestarts=0$/m, 'never restarted');
like($after, qr/^Result=success$/m, 'no watchdog timeout');
$r = http_get(nginx_port(), '/y', timeout => 30);
is($r->{status}, 200, 'a request after the reload: 200');

done_testing();
