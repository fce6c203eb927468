#!/usr/bin/perl
# The module's peer under valgrind (master + 2 workers, leak checking on): warm requests that
# retry connect() on a full backlog (a burst onto a backlog-8 app), keepalive upstream
# connections, and the re-run of a warm request whose app was killed while helperd was down
# (held, then 503 at the helper deadline; held, then 200 when helperd comes back). Every
# process's valgrind log must stay empty.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

plan skip_all => 'valgrind not installed' unless -x '/usr/bin/valgrind';

sandbox_up();
install_app('narrow', backlog => 8);
install_app('down');
install_app('back');
start_helperd();

my $vdir = testdir() . '/valgrind';
my $http = <<"EOF2";
    upstream narrow { server unix:${\ app_socket('narrow')}; ondemand unit=${\ app_unit('narrow')} idle_timeout=0; keepalive 4; }
    upstream down { server unix:${\ app_socket('down')}; ondemand unit=${\ app_unit('down')} idle_timeout=0; }
    upstream back { server unix:${\ app_socket('back')}; ondemand unit=${\ app_unit('back')} idle_timeout=0; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location = /_stub { stub_status; }
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app;
                     proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
EOF2
start_nginx(
    helper_timeout => '2s',
    timeout => 120,
    wrapper => valgrind_wrapper($vdir),
    http => $http);
my $port = nginx_port();
my $log = nginx_error_log();
sub get { http_get($port, '/', headers => { 'X-App' => $_[0] }, timeout => 120) }

is(get($_)->{status}, 200, "$_: started") for qw(narrow down back);

my $burst = http_get_many($port, '/', 100, headers => { 'X-App' => 'narrow' }, timeout => 120);
is(scalar(grep { ($_->{status} // 0) == 200 } @$burst), 100,
    'a burst of 100 onto a running backlog-8 app (keepalive upstream): all 200');

stop_daemon('helperd');
ok(kill_app_main(app_unit('down')), 'down: killed while helperd is down');
is(get('down')->{status}, 503, 'down: held, then 503 at the helper deadline');

ok(kill_app_main(app_unit('back')), 'back: killed while helperd is down');
my $base = stub_status($port);
my $bg = bg_get_many($port, '/', 1, headers => { 'X-App' => 'back' }, timeout => 120);
ok(wait_parsed($base, 1, timeout => 60), 'back: the request reached nginx');
start_helperd();
is(collect($bg)->[0]{status}, 200, 'back: held, then 200 when helperd is back');

my $status = stop_daemon('nginx', signal => 'QUIT', timeout => 120);
is($status >> 8, 0, 'nginx under valgrind exited cleanly');
my ($logs, $reports) = valgrind_reports($vdir);
ok(@$logs >= 3, 'valgrind logs of the master and the workers') or diag("logs: @$logs");
is(scalar(@$reports), 0, 'valgrind reported nothing (no memory error, no definite leak)')
    or diag(join("\n", @$reports));

done_testing();
