#!/usr/bin/perl
# ondemandctl against the real stack: `check` and `gen-nginx` on app files, nginx serving the
# generated include with host routing, `start`/`stop`/`status` (table and --json) through helperd;
# `status` as the operator's view (issue #13): memory and CPU from systemd, `status APP` with its
# events, the table fitting $COLUMNS, `--version`, an unknown command, and helperd down.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

my $ctl = repo_root() . '/build/bin/ondemandctl';
plan skip_all => "$ctl is not built" unless -x $ctl;

sandbox_up();
install_template('ondemand-exec@.service');
my $apps = conf_dir() . '/apps';
my $sockdir = "$ENV{XDG_RUNTIME_DIR}/ondemand/apps";
for my $app (qw(alpha beta)) {
    write_app_conf($app, KIND => 'exec',
        EXEC => testapp_bin() . " --socket \$ONDEMAND_SOCKET --name $app",
        HOSTS => "$app.localhost www.$app.localhost", START_TIMEOUT => '20s',
        IDLE_TIMEOUT => '0');
}
start_helperd();

sub ctl {
    my (@args) = @_;
    return run_cmd($ctl, '--socket', helperd_socket(), '--apps-dir', $apps,
        '--socket-dir', $sockdir, '--bus', 'user', @args);
}

# -- check: good files pass; a bad one is reported with file, line and key
my ($out, $st) = ctl('check');
is($st, 0, 'check: the app files are valid') or diag($out);
like($out, qr/2 app file\(s\) OK, 0 error\(s\)/, 'check: counts the files');
my $bad = testdir() . '/bad.conf';
open(my $fh, '>', $bad) or die;
print $fh "KIND=exec\nEXEC=/bin/true\nIDLE_TIMEOUT=soon\n";
close $fh;
($out, $st) = ctl('check', $bad);
isnt($st, 0, 'check: a bad file fails');
like($out, qr/^\Q$bad\E:3: IDLE_TIMEOUT: "soon" is not a time/m, 'check: names file, line, key');

# -- check --nginx: the generated include goes through a real `nginx -t` with the module
my $module = repo_root() . '/build/modules/ngx_http_ondemand_module.so';
($out, $st) = ctl('check', '--nginx', '--nginx-module', $module);
is($st, 0, 'check --nginx: passes') or diag($out);
like($out, qr/check: nginx -t accepts the generated include \(module \Q$module\E\)/,
    'check --nginx: nginx -t ran on the generated include');
my $not_a_module = testdir() . '/not-a-module.so';
open($fh, '>', $not_a_module) or die;
print $fh "not an ELF file\n";
close $fh;
($out, $st) = ctl('check', '--nginx', '--nginx-module', $not_a_module);
isnt($st, 0, 'check --nginx: fails when nginx -t fails');
like($out, qr/check: nginx -t refuses the generated include/, 'and says so, with nginx\'s output');
($out, $st) = ctl('check', '--nginx-module', testdir() . '/missing.so');
is($st, 0, 'check without --nginx: a missing module skips nginx -t');
like($out, qr/check: nginx -t skipped: /, 'and says it was skipped');

# -- gen-nginx: nginx accepts the include and routes by host
my $include = testdir() . '/apps.conf';
($out, $st) = ctl('gen-nginx', '--output', $include);
is($st, 0, 'gen-nginx writes the include') or diag($out);
start_nginx(http => <<"EOF");
    include $include;
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$app; proxy_pass http://\$app; }
    }
EOF
my $r = http_get(nginx_port(), '/via-host', host => 'www.alpha.localhost', timeout => 30);
is($r->{status}, 200, 'generated config: a cold request by host name: 200');
like($r->{body} // '', qr/^app=alpha pid=\d+ path=\/via-host$/m, 'routed to the right app');

# -- start / status / stop through helperd
($out, $st) = ctl('start', 'beta');
is($st, 0, 'start beta') or diag($out);
like($out, qr/^beta: ready after \d+ ms \(ondemand-exec\@beta\.service\)$/m, 'start reports readiness');
is(unit_active('ondemand-exec@beta.service'), 'active', 'beta is active in systemd');
ok(unix_connects("$sockdir/beta/app.sock"), 'beta listens');

($out, $st) = ctl('status');
is($st, 0, 'status') or diag($out);
like($out, qr/^APP\s+STATE\s+SINCE\s+LAST\s+STARTS\s+FAIL\s+LAST-FAILURE\s+MEMORY\s+CPU\s+UNIT$/m,
    'status: a table with the operator\'s columns');
like($out, qr/^alpha\s+ready\s.*\sondemand-exec\@alpha\.service$/m, 'status: alpha is ready');
like($out, qr/^beta\s+ready\s+\d+s\s+\d+s\s+1\s+0\s+-\s+(\S+)\s+\d+\.\d+s\s+ondemand-exec\@beta\.service$/m,
    'status: beta: ready, since/last in seconds, 1 start, 0 failures, no last failure, memory, CPU seconds')
    or diag($out);
# Memory needs the memory controller on the manager's cgroup2 hierarchy: the test bed's hybrid
# layout (cgroup v1 memory) has none, and systemd then has no MemoryCurrent.
my $memory_controller = 0;
if (open(my $c, '<', '/sys/fs/cgroup/unified/cgroup.controllers')) {
    $memory_controller = (<$c> // '') =~ /\bmemory\b/ ? 1 : 0;
}
my ($beta_mem) = $out =~ /^beta\s+ready\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)/m;
if ($memory_controller) {
    like($beta_mem // '', qr/^\d+(\.\d)?[BKMG]$/, 'status: beta\'s memory (MemoryCurrent)');
} else {
    is($beta_mem, '-', 'status: no MemoryCurrent without a cgroup2 memory controller: "-"');
}

{
    local $ENV{COLUMNS} = 60;
    ($out, $st) = ctl('status');
    is($st, 0, 'status with COLUMNS=60');
    my @wide = grep { length($_) > 60 } split /\n/, $out;
    is(scalar(@wide), 0, 'status: every line fits 60 columns') or diag($out);
    like($out, qr/^APP\s+STATE\b.*\bMEMORY\s+CPU$/m, 'status: the narrow layout keeps memory and CPU')
        or diag($out);
}

($out, $st) = ctl('status', 'beta');
is($st, 0, 'status beta') or diag($out);
like($out, qr/^beta: ready since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC/m, 'status beta: state and since');
like($out, qr/^\s+unit:\s+ondemand-exec\@beta\.service \(active\)$/m, 'status beta: the unit, active in systemd');
like($out, qr/^\s+socket:\s+\Q$sockdir\E\/beta\/app\.sock$/m, 'status beta: the socket');
like($out, qr/^\s+ready:\s+connect$/m, 'status beta: the ready mode');
like($out, qr/^\s+start timeout:\s+20s$/m, 'status beta: the start timeout from its app file');
like($out, qr/^\s+idle timeout:\s+0$/m, 'status beta: the idle timeout from its app file');
like($out, qr/^\s+CPU time:\s+\d+\.\d+s$/m, 'status beta: CPU time');
like($out, qr/^\s+\S+ \S+ UTC  start\n\s+\S+ \S+ UTC  ready$/m, 'status beta: its events, start then ready, with times')
    or diag($out);

($out, $st) = ctl('status', 'beta', '--json');
is($st, 0, 'status beta --json') or diag($out);
my $one = eval { JSON::PP::decode_json($out) };
ok(ref $one eq 'HASH', 'status beta --json is one JSON object') or diag($out);
is($one->{app}, 'beta', 'status beta --json: the app');
is_deeply([ map { $_->{event} } @{ $one->{events} // [] } ], [qw(start ready)], 'status beta --json: its events');
cmp_ok($one->{cpu_ns} // 0, '>', 0, 'status beta --json: CPU time in ns');
is($one->{socket}, "$sockdir/beta/app.sock", 'status beta --json: the socket');
is($one->{start_timeout}, '20s', 'status beta --json: the start timeout');

($out, $st) = ctl('status', 'nosuch');
is($st >> 8, 1, 'status of an unknown app fails');
like($out, qr/no app nosuch/, 'and says so');

($out, $st) = ctl('status', '--json');
is($st, 0, 'status --json') or diag($out);
my $json = eval { require JSON::PP; JSON::PP::decode_json($out) };
ok($json, 'status --json is JSON') or diag($out);
my ($beta) = grep { $_->{app} eq 'beta' } @{ $json // [] };
is($beta->{state}, 'ready', 'status --json: beta is ready');
is($beta->{unit}, 'ondemand-exec@beta.service', 'status --json: its unit');
ok(exists $beta->{starts} && exists $beta->{since}, 'status --json: has the documented keys');
is($beta->{starts}, 1, 'status --json: beta was started once');
is($beta->{failures}, 0, 'status --json: and never failed');
cmp_ok(abs(($beta->{since} // 0) - time() * 1000), '<', 60_000, 'status --json: since is a recent unix time in ms');
cmp_ok($beta->{last_activity} // 0, '<=', $beta->{since} // 0, 'status --json: the last request (its START) came before it was ready');
ok(exists $beta->{memory_bytes}, 'status --json: memory_bytes (null without a figure)');
cmp_ok($beta->{cpu_ns} // 0, '>', 0, 'status --json: cpu_ns of the running app');
is($beta->{last_failure}, undef, 'status --json: no last failure');
my $beta_last = $beta->{last_activity};

($out, $st) = ctl('stop', 'beta');
is($st, 0, 'stop beta') or diag($out);
like($out, qr/^beta: stopped/m, 'stop reports it');
is(unit_active('ondemand-exec@beta.service'), 'inactive', 'beta is inactive in systemd');
($out, $st) = ctl('status', '--json');
my $after_stop = eval { JSON::PP::decode_json($out) } // [];
my ($beta_after) = grep { $_->{app} eq 'beta' } @$after_stop;
is($beta_after->{state}, 'stopped', 'status --json: beta is stopped');
is($beta_after->{last_activity}, $beta_last, 'status --json: a STOP is not a request: last_activity did not move');
is_deeply([ map { $_->{event} } @{ $beta_after->{events} // [] } ], [qw(start ready stop stopped)],
    'status --json: the stop is in the events');

# -- stopping an app nginx knows as warm: helperd pushes DOWN to the nginx workers once the stop
#    is done, so the very next request starts it again (no 502)
($out, $st) = ctl('stop', 'alpha');
is($st, 0, 'stop alpha (warm in nginx)') or diag($out);
my @after = map { http_get(nginx_port(), "/after-stop-$_", host => 'alpha.localhost', timeout => 30) } 1 .. 2;
diag("after ctl stop: " . join(', ', map { $_->{status} // $_->{error} } @after));
is($after[0]{status}, 200, 'the first request after an ondemandctl stop is served');
is($after[1]{status}, 200, 'the second request after an ondemandctl stop is served');

($out, $st) = ctl('start', 'nosuch');
isnt($st, 0, 'start of an app without a file fails');
like($out, qr/no app file .*nosuch\.conf/, 'and says so');

# -- --version, an unknown command
($out, $st) = ctl('--version');
is($st, 0, '--version');
my ($helperd_version) = run_cmd(repo_root() . '/build/bin/ondemand-helperd', '--version');
my ($v) = $helperd_version =~ /^ondemand-helperd (\S+)$/m;
ok(defined $v, "helperd's version") or diag($helperd_version);
like($out, qr/^ondemandctl \Q${\ ($v \/\/ '?')}\E$/m, '--version: the project version, as helperd\'s');
($out, $st) = ctl('statsu');
is($st >> 8, 2, 'an unknown command exits 2');
like($out, qr/^ondemandctl: unknown command statsu\b/m, 'and names itself') or diag($out);

# -- helperd down: say which unit to start, still list the app files with systemd's view
($out, $st) = ctl('start', 'beta');
is($st, 0, 'start beta again') or diag($out);
stop_daemon('helperd');
($out, $st) = ctl('status');
is($st >> 8, 3, 'status with helperd down exits 3');
like($out, qr/helperd is not running/, 'status: helperd is down');
like($out, qr/systemctl start ondemand-helperd\.socket/, 'status: which unit to start');
like($out, qr/^alpha\s+\((?:active|inactive)\)\s.*ondemand-exec\@alpha\.service$/m, 'status: alpha listed with its unit\'s state');
like($out, qr/^beta\s+\(active\)\s+-\s+-\s+-\s+-\s+-\s+\S+\s+\d+\.\d+s\s+ondemand-exec\@beta\.service$/m,
    'status: beta is active in systemd, with its CPU time') or diag($out);
($out, $st) = ctl('stop', 'beta');
isnt($st, 0, 'stop without helperd fails');
systemctl('stop', 'ondemand-exec@beta.service');

done_testing();
