#!/usr/bin/perl
# The module under valgrind as nginx really runs: a master and 2 workers (valgrind follows the
# forks; --trace-children=yes follows execs too), with leak checking on. It goes through a
# keep_warm start, a cold herd, an eviction under ondemand_max_running, a full hold queue, an
# idle freeze and thaw, a DOWN from helperd, a helper that sends a line longer than the limit, a
# reload and a worker killed with SIGKILL. A helper line with control bytes reaches the error log
# with them made visible. Every process's valgrind log must stay empty: no
# memory error and no definite leak.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::UNIX;
use POSIX ();
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

plan skip_all => 'valgrind not installed' unless -x '/usr/bin/valgrind';

sandbox_up();
install_app('warm');
install_app('app', delay_ms => 100);
install_app('other');
install_app('ice');
install_app('q', never_listen => 1);
start_helperd();

my $vdir = testdir() . '/valgrind';
my $http = <<"EOF2";
    upstream warm { server unix:${\ app_socket('warm')}; ondemand unit=${\ app_unit('warm')} keep_warm; }
    upstream app { server unix:${\ app_socket('app')}; ondemand unit=${\ app_unit('app')} idle_timeout=1h; }
    upstream other { server unix:${\ app_socket('other')}; ondemand unit=${\ app_unit('other')} idle_timeout=1h; }
    upstream ice { server unix:${\ app_socket('ice')}; ondemand unit=${\ app_unit('ice')} idle_timeout=1s freeze; }
    upstream q { server unix:${\ app_socket('q')}; ondemand unit=${\ app_unit('q')} start_timeout=3s queue=1; }
    ondemand_max_running 4;
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
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

ok(wait_for(sub { unit_active(app_unit('warm')) eq 'active' }, timeout => 60),
    'keep_warm: started with nginx');
my $herd = http_get_many($port, '/', 8, headers => { 'X-App' => 'app' }, timeout => 120);
is(scalar(grep { ($_->{status} // 0) == 200 } @$herd), 8, 'cold herd of 8: all 200');

# ice: used, then frozen when idle, then thawed by a request
is(get('ice')->{status}, 200, 'ice: started');
ok(wait_log_line($log, qr/app "ice" frozen/, timeout => 60), 'ice: frozen when idle');
is(get('ice')->{status}, 200, 'ice: thawed by a request');

# warm, app, ice run (3 of 4): other takes the 4th; q must evict the least recently used idle one
is(get('other')->{status}, 200, 'other: started (4 apps run)');
my $from = log_size($log);
my $q = bg_get_many($port, '/', 2, headers => { 'X-App' => 'q' }, timeout => 120);
my $res = collect($q);
is(join(' ', sort map { $_->{status} // 'none' } @$res), '503 504',
    'q (queue=1, never ready): one request 503 at once (queue full), one 504 at start_timeout');
ok(wait_log_line($log, qr/stopping app "\w+", the least recently used, to make room for app "q"/,
    from => $from, timeout => 10), 'q: an idle app was evicted to make room');

# DOWN: the unit stops behind ondemand's back; helperd tells every worker
$from = log_size($log);
systemctl('stop', app_unit('other'));
ok(wait_log_line($log, qr/app "other" went down/, from => $from, timeout => 60), 'other: DOWN');
is(get('other')->{status}, 200, 'other: started again on the next request');

# a helper that sends a line longer than the protocol's limit
stop_daemon('helperd');
unlink helperd_socket();
my $fake = fork() // die "fork: $!";
if ($fake == 0) {
    my $srv = IO::Socket::UNIX->new(Local => helperd_socket(), Listen => 16) or POSIX::_exit(1);
    while (my $c = $srv->accept) { print {$c} "\e[2Jjunk\n", 'x' x 5000; }
    POSIX::_exit(0);
}
ok(wait_log_line($log, qr/line too long from helper/, from => $from, timeout => 60),
    'a too-long line from the helper closes the connection');
ok(wait_log_line($log, qr/bad line from helper \(control character in line\): "\?\[2Jjunk"/,
    from => $from, timeout => 10), 'a line with control bytes is logged with them made visible');
is(count_log_lines($log, qr/\e/), 0, 'no raw control byte reached the error log');
kill 'KILL', $fake;
waitpid($fake, 0);
unlink helperd_socket();
start_helperd();
is(get('app')->{status}, 200, 'helperd back: requests are served');

# reload, then a worker killed
reload_nginx(helper_timeout => '2s', http => $http);
is(get('app')->{status}, 200, 'after a reload: 200');
my @workers = nginx_workers();
ok(@workers == 2, 'two workers') or diag("workers: @workers");
my $killed = $workers[0];
kill_workers($killed);
ok(wait_for(sub { my @w = nginx_workers(); @w == 2 && !grep { $_ == $killed } @w },
    timeout => 60, what => 'a new worker'), 'a killed worker is replaced');
is(get('app')->{status}, 200, 'after the worker death: 200');

my $status = stop_daemon('nginx', signal => 'QUIT', timeout => 120);
is($status >> 8, 0, 'nginx under valgrind exited cleanly');
my ($logs, $reports) = valgrind_reports($vdir, skip => [$killed]);
ok(@$logs >= 4, 'valgrind logs of the master and the workers') or diag("logs: @$logs");
is(scalar(@$reports), 0, 'valgrind reported nothing (no memory error, no definite leak)')
    or diag(join("\n", @$reports));

done_testing();
