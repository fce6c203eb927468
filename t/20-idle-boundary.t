#!/usr/bin/perl
# Requests fired at the idle boundary: the app has a 100 ms idle timeout and requests arrive
# 60-180 ms apart, so many land just before, during or just after a stop. None may fail.
# BOUNDARY_CYCLES (default 25) sets how many stop/start cycles to drive; `make bench` runs
# 1,000 and records the result in docs/BENCHMARKS.md.
# (The pauses between requests are the workload here, not a way to synchronise.)

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Time::HiRes qw(sleep time);
use Ondemand::Test;
use Ondemand::Stack;

my $cycles_wanted = $ENV{BOUNDARY_CYCLES} // 25;
my $time_limit = $ENV{BOUNDARY_SECONDS} // 600;

sandbox_up();
install_app('edge');
start_helperd();
start_nginx(workers => 2, http => <<"EOF2");
    upstream edge {
        server unix:${\ app_socket('edge')};
        ondemand unit=${\ app_unit('edge')} idle_timeout=100ms start_timeout=20s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app edge; proxy_pass http://edge; }
    }
EOF2

srand(42);
my ($requests, $errors, %statuses) = (0, 0);
my $started = time;
while (helperd_start_units(app_unit('edge')) < $cycles_wanted + 1 && time - $started < $time_limit) {
    # 1-3 requests at once, so the boundary is hit from both workers
    my $n = 1 + int(rand(3));
    my $results = http_get_many(nginx_port(), '/', $n, timeout => 30);
    for (@$results) {
        $requests++;
        my $s = $_->{status} // 'none';
        $statuses{$s}++;
        $errors++ unless $s eq '200';
    }
    sleep(0.06 + rand(0.12));
}
my $cycles = helperd_start_units(app_unit('edge')) - 1;
my $stops = count_log_lines(nginx_error_log(), qr/app "edge" idle for \d+ ms, stopping/);

cmp_ok($cycles, '>=', $cycles_wanted, "drove $cycles stop/start cycles");
cmp_ok($stops, '>=', $cycles, "$stops idle stops");
is($errors, 0, "$requests requests at the idle boundary: no errors") or diag(explain \%statuses);
is(count_log_lines(nginx_error_log(), qr/\[(alert|crit)\]/), 0, 'no alert or crit in the error log');
diag("boundary: cycles=$cycles stops=$stops requests=$requests errors=$errors seconds="
    . sprintf('%.1f', time - $started));

done_testing();
