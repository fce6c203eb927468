#!/usr/bin/perl
# ondemand_metrics (issue #13): scraped during a herd, a failed start, a start timeout, a
# queue-full refusal and an idle stop, its counters move as the events happen. The text is read
# by prometheus_client's own parser, the JSON is validated against
# docs/examples/ondemand-metrics.schema.json, and the counters survive `nginx -s reload`.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

for my $py (qw(prometheus_client jsonschema)) {
    my (undef, $status) = run_cmd('/usr/bin/python3', '-c', "import $py");
    plan skip_all => "python3 module $py is missing (make test-deps)" if $status != 0;
}

sandbox_up();
my %apps = (
    herd   => { gate => 1, ondemand => 'idle_timeout=2s' },
    broken => { app => { exit_before_listen => 3 } },
    slow   => { app => { delay_ms => 10000 }, start_timeout => '1s' },
    full   => { gate => 1, ondemand => 'queue=1' },
);
my $s = fault_stack(apps => [ map { $_ => $apps{$_} } sort keys %apps ],
    locations => "        location = /metrics { ondemand_metrics; }\n");
my $port = $s->{port};
my $checker = repo_root() . '/t/lib/metrics-check';
my $schema = repo_root() . '/docs/examples/ondemand-metrics.schema.json';

# The samples of one scrape: { 'name{k=v,...}' => value }, parsed by prometheus_client.
sub scrape {
    my (%o) = @_;
    my $path = $o{json} ? '/metrics?format=json' : '/metrics';
    my $r = http_get($port, $path, timeout => 10);
    return undef unless ($r->{status} // 0) == 200;
    my $file = testdir() . '/scrape';
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $r->{body};
    close $fh;
    my ($out, $status) = run_cmd($checker, $o{json} ? ('json', $file, $schema) : ('prom', $file));
    if ($status != 0) {
        diag("metrics-check failed: $out");
        return undef;
    }
    my %m = map { /^(\S+) (\S+)$/ ? ($1 => $2) : () } split /\n/, $out;
    return \%m;
}

sub labels { my ($app, %l) = @_; join(',', map { "$_=$l{$_}" } sort keys %l) }
sub app_metric {
    my ($m, $name, $app, %l) = @_;
    return $m->{"$name\{" . labels($app, app => $app, unit => app_unit($app), %l) . "}"};
}
sub requests { my ($m, $app, $outcome) = @_; app_metric($m, 'ondemand_app_requests_total', $app, outcome => $outcome) }
sub wait_metric {
    my ($what, $check) = @_;
    my $last;
    my $ok = wait_for(sub { $last = scrape(); $last && $check->($last) }, timeout => 20,
        interval => 0.05, what => $what);
    return ($ok, $last);
}

my $m = scrape();
ok($m, 'the text parses with prometheus_client') or BAIL_OUT('no metrics');
is($m->{'ondemand_apps_configured{}'}, 4, 'four apps configured');
is(app_metric($m, 'ondemand_app_state', 'herd', state => 'cold'), 1, 'herd is cold');
is(app_metric($m, 'ondemand_app_starts_total', 'herd'), 0, 'no start yet');
ok((wait_metric('both workers to have helperd', sub {
    2 == grep { /^ondemand_worker_helper_connected\{/ && $_[0]{$_} == 1 } keys %{ $_[0] } }))[0],
    'each of the two workers reports its helperd connection');

# -- a herd: 8 requests held while the gated app starts, then released
my $bg = bg_get_many($port, '/', 8, headers => { 'X-App' => 'herd' });
my ($ok, $during) = wait_metric('8 held requests', sub {
    (app_metric($_[0], 'ondemand_app_requests_held', 'herd') // 0) == 8 });
ok($ok, 'during the herd: requests_held is 8');
is(app_metric($during, 'ondemand_app_state', 'herd', state => 'starting'), 1, 'during the herd: starting');
is(app_metric($during, 'ondemand_app_starts_total', 'herd'), 1, 'during the herd: one start');
open_gate('herd');
my $res = collect($bg);
is(scalar(grep { $_->{status} eq '200' } @$res), 8, 'the herd is served');
$m = scrape();
is(requests($m, 'herd', 'cold'), 8, 'requests_total{outcome=cold} 8');
is(app_metric($m, 'ondemand_app_hold_seconds_count', 'herd'), 8, 'hold histogram: 8 observations');
cmp_ok(app_metric($m, 'ondemand_app_hold_seconds_sum', 'herd'), '>', 0, 'hold histogram: time held');
is(app_metric($m, 'ondemand_app_hold_seconds_bucket', 'herd', le => '+Inf'), 8, 'hold histogram +Inf bucket');
is(app_metric($m, 'ondemand_app_requests_held', 'herd'), 0, 'nothing held any more');
is(app_metric($m, 'ondemand_app_state', 'herd', state => 'ready'), 1, 'herd is ready');
cmp_ok(app_metric($m, 'ondemand_app_last_request_timestamp_seconds', 'herd'), '>', time() - 60,
    'last request time is recent unix time');
for (1 .. 3) {
    http_get($port, '/', headers => { 'X-App' => 'herd' }, timeout => 10);
}
$m = scrape();
is(requests($m, 'herd', 'warm'), 3, 'three warm requests counted');
is(app_metric($m, 'ondemand_app_starts_total', 'herd'), 1, 'still one start');

# -- a start that fails
is(http_get($port, '/', headers => { 'X-App' => 'broken' }, timeout => 30)->{status}, 502,
    'broken app: 502');
$m = scrape();
is(app_metric($m, 'ondemand_app_start_failures_total', 'broken'), 1, 'start_failures_total 1');
is(requests($m, 'broken', 'failed'), 1, 'requests_total{outcome=failed} 1');

# -- a start that times out
is(http_get($port, '/', headers => { 'X-App' => 'slow' }, timeout => 30)->{status}, 504,
    'slow app: 504');
is(requests(scrape(), 'slow', 'timeout'), 1, 'requests_total{outcome=timeout} 1');

# -- a full hold queue (queue=1)
my $held = bg_get_many($port, '/', 1, headers => { 'X-App' => 'full' });
ok((wait_metric('one held request', sub {
    (app_metric($_[0], 'ondemand_app_requests_held', 'full') // 0) == 1 }))[0], 'one request held');
is(http_get($port, '/', headers => { 'X-App' => 'full' }, timeout => 10)->{status}, 503,
    'the second is refused 503');
is(requests(scrape(), 'full', 'queued-full'), 1, 'requests_total{outcome=queued-full} 1');
open_gate('full');
is(collect($held)->[0]{status}, '200', 'the held one is served');

# -- the idle stop (idle_timeout=2s)
($ok, $m) = wait_metric('herd to be stopped for idleness', sub {
    (app_metric($_[0], 'ondemand_app_idle_stops_total', 'herd') // 0) == 1
        && app_metric($_[0], 'ondemand_app_state', 'herd', state => 'cold') == 1 });
ok($ok, 'idle_stops_total 1 and cold again after the idle stop');

# -- JSON, by query and by Accept, validated against the schema
my $j = scrape(json => 1);
ok($j, 'the JSON validates against the schema');
is(requests($j, 'herd', 'cold'), 8, 'JSON: the same cold count');
is(app_metric($j, 'ondemand_app_idle_stops_total', 'herd'), 1, 'JSON: the same idle stop');
my $r = http_get($port, '/metrics', headers => { 'Accept' => 'application/json' }, timeout => 10);
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'Accept: application/json gets JSON');
$r = http_get($port, '/metrics', timeout => 10);
like($r->{headers}{'content-type'} // '', qr{^text/plain; version=0\.0\.4}, 'the text format by default');
is(http_request($port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    timeout => 10)->{status}, 405, 'POST: 405');

# -- counters survive a reload
my ($reloaded) = raw_reload(@{ $s->{conf} });
ok($reloaded, 'nginx reloaded');
($ok, $m) = wait_metric('the new workers', sub { defined requests($_[0], 'herd', 'cold') });
is(requests($m, 'herd', 'cold'), 8, 'after the reload: cold count kept');
is(requests($m, 'herd', 'warm'), 3, 'after the reload: warm count kept');
is(app_metric($m, 'ondemand_app_starts_total', 'herd'), 1, 'after the reload: starts kept');
is(app_metric($m, 'ondemand_app_start_failures_total', 'broken'), 1, 'after the reload: failures kept');

# -- the shipped Grafana dashboard only names metrics that exist
open(my $fh, '<', repo_root() . '/docs/examples/grafana-ondemand.json') or die $!;
my $dashboard = do { local $/; <$fh> };
close $fh;
my %named = map { $_ => 1 } $dashboard =~ /\b(ondemand_\w+)/g;
ok(scalar(keys %named) >= 8, 'the dashboard names the metrics');
for my $name (sort keys %named) {
    ok((grep { /^\Q$name\E\{/ } keys %$m), "dashboard metric $name is served");
}

done_testing();
