#!/usr/bin/perl
# The module under valgrind (nginx with master_process off): cold and warm requests, HTTP/2,
# a POST body, clients giving up while held, a failed start, a start timeout, an idle stop
# and restart, helperd going away and coming back. Requires no memory errors.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

plan skip_all => 'valgrind not installed' unless -x '/usr/bin/valgrind';

sandbox_up();
install_app('app', delay_ms => 200);
install_app('crash', exit_before_listen => 3);
install_app('never', never_listen => 1);
start_helperd();

my $vlog = testdir() . '/valgrind.log';
my $h2port = free_port();
start_nginx(
    master_process => 'off',
    helper_timeout => '1s',
    timeout => 60,
    wrapper => [ 'valgrind', '--quiet', '--error-exitcode=99', '--track-origins=yes',
                 '--trace-children=no', "--log-file=$vlog" ],
    http => <<"EOF2");
    upstream app { server unix:${\ app_socket('app')}; ondemand unit=${\ app_unit('app')} idle_timeout=1s; }
    upstream crash { server unix:${\ app_socket('crash')}; ondemand unit=${\ app_unit('crash')}; }
    upstream never { server unix:${\ app_socket('never')}; ondemand unit=${\ app_unit('never')} start_timeout=1s; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        listen 127.0.0.1:$h2port http2;
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2
my $port = nginx_port();
my %app = (headers => { 'X-App' => 'app' }, timeout => 60);

my $results = http_get_many($port, '/', 10, %app);
is(scalar(grep { ($_->{status} // 0) == 200 } @$results), 10, 'cold herd of 10: all 200');
is(http_get($port, '/', %app)->{status}, 200, 'warm request');
my ($out) = run_cmd('curl', '-s', '--http2-prior-knowledge', '-m', '60', '-H', 'X-App: app',
    '--data-binary', 'hello body', "http://127.0.0.1:$h2port/echo");
is($out, 'hello body', 'HTTP/2 POST');
is(http_get($port, '/', headers => { 'X-App' => 'crash' }, timeout => 60)->{status}, 502, 'failed start');
is(http_get($port, '/', headers => { 'X-App' => 'never' }, timeout => 60)->{status}, 504, 'start timeout');

ok(wait_for(sub { unit_active(app_unit('app')) eq 'inactive' }, timeout => 30), 'idle stop');
$results = http_get_many($port, '/', 4, headers => { 'X-App' => 'app' }, timeout => 0.1);
is(scalar(grep { !defined $_->{status} } @$results), 4, 'clients gave up while held');
is(http_get($port, '/', %app)->{status}, 200, 'restarted after the idle stop');

# the app stops behind ondemand's back while helperd is away
stop_daemon('helperd');
systemctl('stop', app_unit('app'));
is(http_get($port, '/', headers => { 'X-App' => 'crash' }, timeout => 60)->{status}, 503,
    'helperd gone: 503');
start_helperd();
is(http_get($port, '/', %app)->{status}, 200, 'the vanished app: the request that finds it gone is held and starts it');
is(http_get($port, '/', %app)->{status}, 200, 'then served warm');

my $status = stop_daemon('nginx', signal => 'QUIT', timeout => 60);
is($status >> 8, 0, 'nginx under valgrind exited cleanly (no valgrind errors)');
my $report = do { local $/; open(my $fh, '<', $vlog) or die; <$fh> } // '';
is($report, '', 'valgrind reported nothing') or diag($report);

done_testing();
