#!/usr/bin/perl
# Each app is a tenant (issue #15), against the sandbox's real systemd with the templates as
# shipped: an exec app runs sandboxed as a dynamic user (uid, NoNewPrivs, seccomp, a private
# network, a /run/ondemand holding only its own socket directory) in ondemand-apps.slice; the
# app-file keys USER, WORKDIR, MEMORY_MAX, CPU_WEIGHT and NETWORK=host reach its unit through the
# drop-in `ondemandctl apply` writes (and removes again when the keys go); the socket directory
# is 0750 root:www-data, so a local user outside that group cannot connect to an app directly;
# `check` warns about app files others may read or write; a podman app's NETWORK=host reaches
# `podman run --network`; the documented slice drop-in caps all apps together.
# What the test bed cannot show (no memory or cpu controller on its cgroup2): that MemoryMax=
# and CPUWeight= are enforced. They are asserted with `systemctl show`.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

my $ctl = repo_root() . '/build/bin/ondemandctl';
plan skip_all => "$ctl is not built" unless -x $ctl;
my $podman = -x '/usr/bin/podman';

sandbox_up();
install_template('ondemand-exec@.service');
install_template('ondemand-apps.slice');
if ($podman) {
    podman_setup();
    install_template('ondemand-podman-simple@.service');
}
my $apps = conf_dir() . '/apps';
chmod 0750, $apps;
my $sockdir = "$ENV{XDG_RUNTIME_DIR}/ondemand/apps";
my $units = $ENV{ONDEMAND_SANDBOX_UNITS};
$ENV{ONDEMAND_UNIT_DIR} = $units;    # check compares the drop-ins there with the app files
my $app_bin = testapp_bin();
write_app_conf('dyn', EXEC => "$app_bin --socket \$ONDEMAND_SOCKET --name dyn",
    HOSTS => 'dyn.localhost');
my %wiki = (EXEC => "$app_bin --socket \$ONDEMAND_SOCKET --name wiki", HOSTS => 'wiki.localhost');
write_app_conf('wiki', %wiki, USER => 'nobody', WORKDIR => '/usr/share', MEMORY_MAX => '64M',
    CPU_WEIGHT => '50', NETWORK => 'host');
write_app_conf('web', KIND => 'podman-simple', IMAGE => image_name(), NETWORK => 'host',
    CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name web',
    HOSTS => 'web.localhost') if $podman;
chmod 0640, glob("$apps/*.conf");

sub ctl {
    my (@args) = @_;
    return run_cmd($ctl, '--socket', helperd_socket(), '--apps-dir', $apps,
        '--socket-dir', $sockdir, '--bus', 'user', @args);
}

sub show {
    my ($unit, @props) = @_;
    my %v = map { /^(\w+)=(.*)$/ ? ($1 => $2) : () }
        split /\n/, scalar systemctl('show', $unit, map { "--property=$_" } @props);
    return \%v;
}

sub main_pid {
    my $pid = systemctl('show', '--property=MainPID', '--value', $_[0]);
    chomp $pid;
    return $pid;
}

sub proc_status {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/status") or return {};
    return { map { /^(\w+):\s*(.*)$/ ? ($1 => $2) : () } <$fh> };
}

sub slurp {
    open(my $fh, '<', $_[0]) or return '';
    local $/;
    return scalar <$fh>;
}

# -- check: app files 0640 in a 0750 directory pass without a warning; looser modes are warned
my ($out, $st) = ctl('check');
is($st, 0, 'check: the app files are valid') or diag($out);
unlike($out, qr/warning: mode/, 'check: 0640 files in a 0750 directory: no mode warning');
like($out, qr{^\Q$apps\E/wiki\.conf: warning: the unit settings of this file differ from \Q$units\E/ondemand-exec\@wiki\.service\.d/50-ondemand-app\.conf: run ondemandctl apply$}m,
    'check: an app whose keys are not applied yet is warned');
like($out, qr{dyn\.conf: warning: the unit settings}, 'check: so is an exec app at the defaults (its own dynamic user)');
chmod 0644, "$apps/wiki.conf";
chmod 0755, $apps;
($out, $st) = ctl('check');
is($st, 0, 'check: mode warnings do not fail check') or diag($out);
like($out, qr{^\Q$apps\E/wiki\.conf: warning: mode 0644: readable by every local user}m,
    'check: a world-readable app file is warned (it may hold secrets)');
like($out, qr{^\Q$apps\E: warning: mode 0755: every local user may read}m,
    'check: a directory others may read is warned');
chmod 0664, "$apps/wiki.conf";
($out) = ctl('check');
like($out, qr{wiki\.conf: warning: mode 0664: writable by its group or others, but an app file is root-equivalent},
    'check: a group-writable app file is warned (it is root-equivalent)');
chmod 0640, "$apps/wiki.conf";
chmod 0750, $apps;
my $bad = testdir() . '/bad.conf';
open(my $fh, '>', $bad) or die;
print $fh "IMAGE=x\nARGS=--network=host\n";
close $fh;
($out, $st) = ctl('check', $bad);
isnt($st, 0, 'check: ARGS=--network=... fails');
like($out, qr/^\Q$bad\E:2: ARGS: "--network=host": set the network with NETWORK=/m,
    'check: and says to use NETWORK=');

# -- apply: the drop-ins, the socket directory, systemd reloaded
($out, $st) = ctl('apply', '--unit-dir', $units, '--nginx-group', 'www-data');
is($st, 0, 'apply') or diag($out);
my $dropin = "$units/ondemand-exec\@wiki.service.d/50-ondemand-app.conf";
like($out, qr/^apply: wrote \Q$dropin\E$/m, 'apply: writes the drop-in of the app with keys');
like($out, qr/^apply: systemd reloaded/m, 'apply: reloads systemd');
like(slurp("$units/ondemand-exec\@dyn.service.d/50-ondemand-app.conf"), qr/^\[Service\]\nUser=ondemand-dyn\n\z/m,
    'apply: an exec app at the defaults gets a dynamic user of its own, named after it');
my @sd = stat $sockdir;
is(sprintf('%04o', $sd[2] & 07777), '0750', 'apply: the socket directory is 0750');
is($sd[5], scalar getgrnam('www-data'), 'apply: and belongs to the group www-data');
is($sd[4], 0, 'apply: and to root');
($out, $st) = ctl('apply', '--unit-dir', $units, '--nginx-group', 'www-data');
like($out, qr/^apply: 0 written, 0 removed, 2 unchanged$/m, 'apply again: nothing to do') or diag($out);
($out) = ctl('check');
unlike($out, qr/run ondemandctl apply/, 'check after apply: the drop-ins are up to date') or diag($out);

my $w = show('ondemand-exec@wiki.service', qw(User DynamicUser WorkingDirectory MemoryMax CPUWeight
    PrivateNetwork Slice));
is_deeply($w, { User => 'nobody', DynamicUser => 'no', WorkingDirectory => '/usr/share',
    MemoryMax => 64 * 1024 * 1024, CPUWeight => 50, PrivateNetwork => 'no',
    Slice => 'ondemand-apps.slice' }, 'wiki: the app file\'s keys are its unit\'s settings');
my $d = show('ondemand-exec@dyn.service', qw(User DynamicUser PrivateNetwork ProtectSystem
    ProtectHome PrivateTmp NoNewPrivileges PrivateDevices Slice MemoryMax));
is_deeply($d, { User => 'ondemand-dyn', DynamicUser => 'yes', PrivateNetwork => 'yes', ProtectSystem => 'strict',
    ProtectHome => 'yes', PrivateTmp => 'yes', NoNewPrivileges => 'yes', PrivateDevices => 'yes',
    Slice => 'ondemand-apps.slice', MemoryMax => 'infinity' },
    'dyn: the template\'s defaults: a dynamic user, sandboxed, in ondemand-apps.slice');

# -- the apps run as their tenants
start_helperd();
for my $app ('dyn', 'wiki', ($podman ? 'web' : ())) {
    ($out, $st) = ctl('start', $app);
    is($st, 0, "start $app") or diag($out);
}
my $dpid = main_pid('ondemand-exec@dyn.service');
my $ds = proc_status($dpid);
my ($duid) = split /\s+/, $ds->{Uid} // '';
ok(defined $duid && $duid >= 61184 && $duid <= 65519, "dyn runs as a dynamic user (uid $duid)");
is($ds->{NoNewPrivs}, 1, 'dyn: NoNewPrivs');
is($ds->{Seccomp}, 2, 'dyn: a seccomp filter');
is($ds->{CapEff}, '0000000000000000', 'dyn: no capabilities');
like(slurp("/proc/$dpid/cgroup"), qr{^0::/.*/ondemand\.slice/ondemand-apps\.slice/ondemand-exec\@dyn\.service$}m,
    'dyn: in ondemand-apps.slice');
isnt(readlink("/proc/$dpid/ns/net"), readlink("/proc/self/ns/net"), 'dyn: a private network (NETWORK=none)');
($out, $st) = run_cmd('nsenter', '-t', $dpid, '-m', 'ls', '-A', "$ENV{XDG_RUNTIME_DIR}/ondemand/apps");
is($out, "dyn\n", 'dyn: its /run/ondemand/apps holds only its own directory');
like(slurp("/proc/$dpid/mountinfo"), qr{ / / ro,}m, 'dyn: the root file system is read-only (ProtectSystem=strict)');

my $wpid = main_pid('ondemand-exec@wiki.service');
my ($wuid) = split /\s+/, proc_status($wpid)->{Uid} // '';
is($wuid, scalar getpwnam('nobody'), 'wiki: USER=nobody: runs as nobody');
is(readlink("/proc/$wpid/cwd"), '/usr/share', 'wiki: WORKDIR=/usr/share is its working directory');
is(readlink("/proc/$wpid/ns/net"), readlink("/proc/self/ns/net"), 'wiki: NETWORK=host: the host\'s network');

# -- the sockets: nginx's group may connect, another local user may not
# (the test dir is root's 0700: let others traverse it, as /run is on a host)
chmod 0711, testdir(), $ENV{ONDEMAND_SANDBOX}, $ENV{XDG_RUNTIME_DIR};
my @curl = ('curl', '-sS', '--max-time', '5', '--unix-socket', "$sockdir/dyn/app.sock", 'http://x/who');
($out, $st) = run_cmd('setpriv', '--reuid=nobody', '--regid=www-data', '--clear-groups', @curl);
is($st, 0, 'a process of the group www-data (nginx\'s workers) reaches the app') or diag($out);
like($out, qr/^app=dyn /m, 'and the app answers');
($out, $st) = run_cmd('setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', @curl);
isnt($st, 0, 'another local user cannot connect to the app around nginx');
like($out, qr/Permission denied|Couldn't connect/i, 'permission denied') or diag($out);

if ($podman) {
    is((podman('inspect', '--format', '{{.HostConfig.NetworkMode}}', 'ondemand-web'))[0], "host\n",
        'web (podman): NETWORK=host reaches podman run --network');
    my $r = http_get_unix(container_socket('web'), '/hi');
    is($r->{status}, 200, 'web (podman): answers on its socket');
}

# -- the drop-in follows the keys: gone keys, back to the defaults; a gone app, gone drop-in
($out, $st) = ctl('stop', 'wiki');
write_app_conf('wiki', %wiki);
chmod 0640, "$apps/wiki.conf";
($out, $st) = ctl('apply', '--unit-dir', $units, '--nginx-group', 'www-data');
is($st, 0, 'apply after the keys are removed') or diag($out);
like($out, qr/^apply: wrote \Q$dropin\E$/m, 'apply: rewrites the drop-in');
is_deeply(show('ondemand-exec@wiki.service', qw(User DynamicUser MemoryMax PrivateNetwork)),
    { User => 'ondemand-wiki', DynamicUser => 'yes', MemoryMax => 'infinity', PrivateNetwork => 'yes' },
    'wiki: back to the defaults');
($out, $st) = ctl('start', 'wiki');
is($st, 0, 'wiki starts again') or diag($out);
my ($wuid2) = split /\s+/, proc_status(main_pid('ondemand-exec@wiki.service'))->{Uid} // '';
ok($wuid2 >= 61184 && $wuid2 <= 65519, "wiki: now a dynamic user (uid $wuid2)");
isnt($wuid2, $duid, 'wiki\'s dynamic user is not dyn\'s: each app a uid of its own');
($out, $st) = ctl('stop', 'dyn');
unlink "$apps/dyn.conf";
($out, $st) = ctl('apply', '--unit-dir', $units, '--nginx-group', 'www-data');
my $dyn_dropin = "$units/ondemand-exec\@dyn.service.d/50-ondemand-app.conf";
like($out, qr/^apply: removed \Q$dyn_dropin\E$/m, 'apply: an app file removed: its drop-in goes');
ok(!-e "$units/ondemand-exec\@dyn.service.d", 'apply: and its directory');

# -- all apps capped together: the slice drop-in of docs/units.md
mkdir "$units/ondemand-apps.slice.d";
open($fh, '>', "$units/ondemand-apps.slice.d/50-limits.conf") or die;
print $fh "[Slice]\nMemoryMax=4G\nCPUQuota=200%\nTasksMax=2000\n";
close $fh;
systemctl('daemon-reload');
is_deeply(show('ondemand-apps.slice', qw(MemoryMax CPUQuotaPerSecUSec TasksMax)),
    { MemoryMax => 4 * 1024**3, CPUQuotaPerSecUSec => '2s', TasksMax => 2000 },
    'the slice drop-in caps all apps together');

done_testing();
