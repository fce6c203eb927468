#!/usr/bin/perl
# Smoke test of the test bed: scripts/sandbox (a real systemd user manager), the test app and the
# harness's helpers. Everything later tests stand on.

use strict;
use warnings;

use Test::More;
use Ondemand::Test;

plan skip_all => 'needs root (cgroups, namespaces)' unless $> == 0;

my $sandbox_script = repo_root() . '/scripts/sandbox';

# "up: manager PID N, base B, cgroup C, units U" from `scripts/sandbox status`.
sub sandbox_status {
    my ($base) = @_;
    die 'sandbox_status: no base dir' unless $base;    # never fall back to the default sandbox
    local $ENV{ONDEMAND_SANDBOX} = $base;
    my $out = `$sandbox_script status 2>&1`;
    my ($pid) = $out =~ /manager PID (\d+)/;
    my ($cg)  = $out =~ /cgroup (ondemand-sb-[0-9a-f]+)/;
    return { up => $? == 0, pid => $pid, cgroup => $cg, text => $out };
}

sub main_pid { systemctl('show', '--property=MainPID', '--value', $_[0]) =~ /(\d+)/ ? $1 : 0 }

sub cgroup_of {
    open(my $fh, '<', "/proc/$_[0]/cgroup") or return '';
    my ($line) = grep { /^0::/ } <$fh>;
    return $line // '';
}

# ----------------------------------------------------------------------------- sandbox up
my $env = sandbox_up();
ok(-S "$env->{XDG_RUNTIME_DIR}/systemd/private", 'manager private socket exists');
ok(-S "$env->{XDG_RUNTIME_DIR}/bus",             'user bus socket exists');
is($ENV{DBUS_SESSION_BUS_ADDRESS}, "unix:path=$env->{XDG_RUNTIME_DIR}/bus", '%ENV points at the sandbox bus');
ok(-d $ENV{ONDEMAND_SANDBOX_UNITS}, 'unit dir exists');
my $st = sandbox_status($ENV{ONDEMAND_SANDBOX});
ok($st->{up}, 'status says up') or diag $st->{text};
ok(-d "/sys/fs/cgroup/unified/$st->{cgroup}" && -d "/sys/fs/cgroup/systemd/$st->{cgroup}",
    'own cgroup in unified and name=systemd only');
ok(!-d "/sys/fs/cgroup/memory/$st->{cgroup}", 'no cgroup in a controller hierarchy');
like(cgroup_of($st->{pid}), qr{^0::/$st->{cgroup}/}, 'manager runs inside the sandbox cgroup');

{
    local $ENV{ONDEMAND_SANDBOX} = $ENV{ONDEMAND_SANDBOX} // die "no sandbox in %ENV";
    my $out = `$sandbox_script up 2>&1`;
    isnt($?, 0, 'second "up" on the same base refuses');
    like($out, qr/already up/, '... and says why');
}

my ($bus_out, $bus_status) = run_cmd('busctl', '--user', 'call', 'org.freedesktop.systemd1',
    '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Peer', 'Ping');
is($bus_status, 0, 'busctl --user reaches systemd over the user bus') or diag $bus_out;

# ------------------------------------------------------------- a test app unit, start/stop
install_unit('testapp-a.service', testapp_unit('a', log_requests => 1));
my $log_from = log_size($ENV{ONDEMAND_SANDBOX_LOG});
my ($out, $status) = systemctl('start', 'testapp-a.service');
is($status, 0, 'systemctl --user start testapp-a') or diag $out;
ok(wait_for(sub { unix_connects(app_socket('a')) }, what => 'app a listening'), 'app a listens');
is(unit_active('testapp-a.service'), 'active', 'unit active');

my $r = http_get_unix(app_socket('a'), '/hello?x=1');
is($r->{status}, 200, 'GET / over the unix socket: 200');
like($r->{body}, qr{^app=a pid=\d+ path=/hello\?x=1\n\z}, 'body names app, pid and path');
is($r->{headers}{'x-app'}, 'a', 'X-App header');
is($r->{headers}{'x-pid'}, main_pid('testapp-a.service'), 'X-Pid is the unit MainPID');
ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr{ondemand-testapp\[a/\d+\]: 200 /hello}, from => $log_from),
    'unit output lands in manager.log');

# The harness's HTTP helpers against the app.
$r = http_get_unix(app_socket('a'), '/echo', body => "x" x 100_000);
is($r->{status}, 200, 'POST /echo');
is(length($r->{body}), 100_000, 'echo body');
is($r->{headers}{'x-body-length'}, 100_000, 'X-Body-Length');

$r = http_request_unix(app_socket('a'),
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
  . "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n");
is($r->{body}, 'hello world', 'chunked request body');

$r = http_get_unix(app_socket('a'), '/status/503');
is($r->{status}, 503, '/status/503');

$r = http_request_unix(app_socket('a'), "BROKEN\r\n\r\n");
is($r->{status}, 400, 'malformed request: 400');

# Two keep-alive requests on one connection, then HTTP/1.0.
$r = http_request_unix(app_socket('a'),
    "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
is($r->{headers}{connection}, 'keep-alive', 'HTTP/1.1 keeps alive by default');
$r = http_request_unix(app_socket('a'), "GET /ten HTTP/1.0\r\n\r\n");
is($r->{headers}{connection}, 'close', 'HTTP/1.0 closes');

# /sleep is asynchronous: 50 concurrent sleeps all begin before the first one is answered
# (the app logs "sleeping" when one begins, and the status just before answering).
my $sleep_from = log_size($ENV{ONDEMAND_SANDBOX_LOG});
my $many = http_get_many(app_socket('a'), '/sleep?ms=300', 50);
is(scalar(grep { ($_->{status} // 0) == 200 } @$many), 50, '50 concurrent /sleep requests answered');
ok(wait_for(sub { count_log_lines($ENV{ONDEMAND_SANDBOX_LOG}, qr{: 200 /sleep\?ms=300$},
    from => $sleep_from) >= 50 }, timeout => 10, what => "the app's 50 answer lines"), 'every answer logged');
{
    open(my $fh, '<', $ENV{ONDEMAND_SANDBOX_LOG}) or die;
    seek($fh, $sleep_from, 0);
    my ($begun, $begun_before_first_answer) = (0, undef);
    while (<$fh>) {
        $begun++ if m{: sleeping 300 ms for /sleep\?ms=300$};
        if (m{: 200 /sleep\?ms=300$}) { $begun_before_first_answer = $begun; last }
    }
    close $fh;
    is($begun_before_first_answer, 50, 'served concurrently: all 50 sleeps began before the first answer');
}

($out, $status) = systemctl('stop', 'testapp-a.service');
is($status, 0, 'systemctl --user stop testapp-a') or diag $out;
is(unit_active('testapp-a.service'), 'inactive', 'unit inactive after stop');
ok(!-e app_socket('a'), 'app removed its socket on SIGTERM');

# A failing app: exit code visible to systemd.
install_unit('testapp-fail.service', testapp_unit('fail', exit_before_listen => 7));
systemctl('start', 'testapp-fail.service');
ok(wait_for(sub { unit_active('testapp-fail.service') eq 'failed' }, what => 'unit failed'),
    '--exit-before-listen makes the unit fail');
like(systemctl('show', '--property=ExecMainStatus', 'testapp-fail.service'), qr/=7$/m, 'exit code 7');

# Type=notify: start returns once the app has sent READY=1.
install_unit('testapp-n.service', testapp_unit('n', notify => 1, delay_ms => 200));
($out, $status) = systemctl('start', 'testapp-n.service');
is($status, 0, 'Type=notify unit started') or diag $out;
ok(unix_connects(app_socket('n')), 'notify app already listens when start returns');
systemctl('stop', 'testapp-n.service');

# ------------------------------------------------------------------- start_daemon/stop_daemon
my $dsock = sockdir('direct') . '/d.sock';
mkdir sockdir('direct');
my $pid = start_daemon(name => 'direct', cmd => [ testapp_bin(), '--socket', $dsock, '--name', 'direct' ],
    ready_unix => $dsock);
is(http_get_unix($dsock, '/')->{headers}{'x-pid'}, $pid, 'start_daemon: app answers with its PID');
is(stop_daemon('direct'), 0, 'stop_daemon: SIGTERM, exit status 0');
ok(!kill(0, $pid), 'daemon gone');

# ------------------------------------------------------------- two sandboxes at once
my $env2 = sandbox_up(name => 'second');
isnt($env2->{XDG_RUNTIME_DIR}, $ENV{XDG_RUNTIME_DIR}, 'second sandbox has its own runtime dir');
my $st2 = sandbox_status($env2->{ONDEMAND_SANDBOX});
ok($st2->{up}, 'second sandbox up');
isnt($st2->{cgroup}, $st->{cgroup}, "distinct cgroups ($st->{cgroup} vs $st2->{cgroup})");

# The same unit name in both; each manager runs its own.
install_unit('same.service', testapp_unit('first'));
{
    local @ENV{ keys %$env2 } = values %$env2;
    install_unit('same.service', testapp_unit('second'));
    is(systemctl('start', 'same.service'), '', 'start same.service in the second sandbox');
}
systemctl('start', 'same.service');
ok(wait_for(sub { unix_connects(app_socket('first')) && unix_connects(app_socket('second')) },
    what => 'both apps listening'), 'both apps listen');
is(http_get_unix(app_socket('first'), '/')->{headers}{'x-app'},  'first',  'first sandbox runs its unit');
is(http_get_unix(app_socket('second'), '/')->{headers}{'x-app'}, 'second', 'second sandbox runs its unit');
like(cgroup_of(main_pid('same.service')), qr{^0::/$st->{cgroup}/}, 'first app in the first cgroup');
{
    local @ENV{ keys %$env2 } = values %$env2;
    like(cgroup_of(main_pid('same.service')), qr{^0::/$st2->{cgroup}/}, 'second app in the second cgroup');
}

ok(sandbox_down($env2->{ONDEMAND_SANDBOX}), 'second sandbox down');
ok(!-d "/sys/fs/cgroup/unified/$st2->{cgroup}" && !-d "/sys/fs/cgroup/systemd/$st2->{cgroup}",
    'second cgroup removed');
ok(!unix_connects(app_socket('second')), 'its app was stopped');
is(unit_active('same.service'), 'active', 'first sandbox unaffected');

# ------------------------------------------------------------------------ down leaves nothing
my $app_pid = main_pid('same.service');
ok(sandbox_down(), 'first sandbox down (with a unit running)');
ok(!kill(0, $app_pid) || `ps -o stat= -p $app_pid` =~ /Z/, 'its app process is gone');
ok(!sandbox_status($env->{ONDEMAND_SANDBOX})->{up}, 'status says down');
ok(!-d "/sys/fs/cgroup/unified/$st->{cgroup}" && !-d "/sys/fs/cgroup/systemd/$st->{cgroup}",
    'first cgroup removed');
ok(!-e "$env->{XDG_RUNTIME_DIR}", 'runtime dir removed');
ok(sandbox_down(), 'down again is harmless');

done_testing();
