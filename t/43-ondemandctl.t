#!/usr/bin/perl
# ondemandctl against the real stack: `check` and `gen-nginx` on app files, nginx serving the
# generated include with host routing, `start`/`stop`/`status` (table and --json) through helperd.

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
        '--socket-dir', $sockdir, @args);
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
like($out, qr/^APP\s+STATE\s+UNIT$/m, 'status: a table');
like($out, qr/^alpha\s+ready\s+ondemand-exec\@alpha\.service$/m, 'status: alpha is ready');
like($out, qr/^beta\s+ready\s+ondemand-exec\@beta\.service$/m, 'status: beta is ready');

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

($out, $st) = ctl('stop', 'beta');
is($st, 0, 'stop beta') or diag($out);
like($out, qr/^beta: stopped/m, 'stop reports it');
is(unit_active('ondemand-exec@beta.service'), 'inactive', 'beta is inactive in systemd');

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

done_testing();
