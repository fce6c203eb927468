#!/usr/bin/perl
# ondemand_max_memory (issue #15): a memory budget for the running apps. Real apps allocate and
# touch 32 MiB each; helperd measures them (here: the fallback, the Pss of the processes in each
# unit's cgroup, since this test bed's cgroup2 has no memory controller) and pushes the figures
# to the workers. A cold start that would exceed the budget stops the least recently used idle
# app first (never a keep_warm one, never a busy one); when nothing idle can free enough, the
# request gets 503 with Retry-After and $ondemand_status max-memory. After a helperd restart the
# last figures still hold the budget.

use strict;
use warnings;
use Test::More;
use POSIX qw(WNOHANG);
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

use constant MIB => 1024 * 1024;

sandbox_up();
install_app($_, alloc_mib => 32, log_requests => 1) for qw(pinned a b c);
start_helperd();

# 4 x ~33 MiB would be ~132 MiB: the budget holds 3 of them.
my $http = "    ondemand_max_memory 120m expect=36m;\n";
$http .= "    upstream pinned { server unix:${\ app_socket('pinned')}; "
       . "ondemand unit=${\ app_unit('pinned')} keep_warm; }\n";
for my $app (qw(a b c)) {
    $http .= "    upstream $app { server unix:${\ app_socket($app)}; "
           . "ondemand unit=${\ app_unit($app)} idle_timeout=10m; }\n";
}
$http .= <<"EOF";
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location = /metrics { ondemand_metrics; }
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF
start_nginx(http => $http);
my $port = nginx_port();

# ondemand_app_memory_bytes of $app in the text format (undef: not there).
sub memory_of {
    my ($app) = @_;
    my $r = http_get($port, '/metrics', timeout => 10);
    return undef unless ($r->{status} // 0) == 200;
    my $unit = app_unit($app);
    return $r->{body} =~ /^ondemand_app_memory_bytes\{app="\Q$app\E",unit="\Q$unit\E"\} (\d+)$/m
        ? $1 : undef;
}
sub memory_known {
    my ($app) = @_;
    my $v;
    ok(wait_for(sub { ($v = memory_of($app) // 0) >= 32 * MIB }, timeout => 10, interval => 0.05,
        what => "helperd's figure for $app"), "$app: its memory is measured (at least the 32 MiB it touched)");
    cmp_ok($v, '<', 48 * MIB, "$app: the figure is the app's own, not more") if $v;
    return $v;
}
sub get { http_get($port, '/', headers => { 'X-App' => $_[0] }, timeout => 30) }
sub error_log_text { open(my $fh, '<', nginx_error_log()) or return ''; local $/; <$fh> }

# -- the keep_warm app starts with nginx; two more fit
ok(wait_for(sub { unix_connects(app_socket('pinned')) }, timeout => 15,
    what => 'the keep_warm app'), 'keep_warm app running');
memory_known('pinned');
is(get('a')->{status}, 200, 'a served');
memory_known('a');
is(get('b')->{status}, 200, 'b served');
memory_known('b');
unlike(error_log_text(), qr/to make room/, 'three apps fit in the budget: nothing stopped');

# -- c does not fit: a, the least recently used idle app, is stopped (pinned is older, but keep_warm)
my $r = get('c');
is($r->{status}, 200, 'c served although the budget was nearly used');
ok(wait_log_line(nginx_error_log(),
    qr/stopping app "a", the least recently used, to make room for app "c", unit \Q${\ app_unit('a')}\E, memory \d+/,
    timeout => 5), 'the least recently used idle app (a) was stopped for it');
ok(wait_for(sub { unit_active(app_unit('a')) eq 'inactive' }, timeout => 10), 'a is stopped');
is(unit_active(app_unit('b')), 'active', 'b still runs');
is(unit_active(app_unit('pinned')), 'active', 'the keep_warm app is never evicted');
memory_known('c');

# -- b and c busy, pinned keep_warm: nothing idle can free room for a
my @busy;
for my $app (qw(b c)) {
    my $pid = fork();
    if ($pid == 0) {
        my $res = http_get($port, '/sleep?ms=3000', headers => { 'X-App' => $app }, timeout => 30);
        exit(($res->{status} // 0) == 200 ? 0 : 1);
    }
    push @busy, $pid;
}
for my $app (qw(b c)) {
    ok(wait_log_line($ENV{ONDEMAND_SANDBOX_LOG}, qr/\b$app\b.*sleeping 3000 ms/, timeout => 10),
        "$app has a request in flight");
}
$r = get('a');
is($r->{status}, 503, 'nothing can be freed: 503');
ok(defined $r->{headers}{'retry-after'}, 'with Retry-After');
is(scalar(grep { waitpid($_, WNOHANG) == 0 } @busy), 2, 'at once: both busy requests are still in flight');
ok(wait_log_line(nginx_error_log(),
    qr/app "a" cannot start: ondemand_max_memory 125829120 bytes, \d+ in use by 3 running apps, \d+ expected for it, and the idle apps free only 0, unit \Q${\ app_unit('a')}\E/,
    timeout => 5), 'the error log names the app, the budget, what is in use and the unit');
like(http_get($port, '/metrics', timeout => 10)->{body},
    qr/^ondemand_app_requests_total\{app="a",unit="\Q${\ app_unit('a')}\E",outcome="max-memory"\} 1$/m,
    'counted as max-memory');
for (@busy) { waitpid($_, 0); is($? >> 8, 0, 'the busy request completed') }
is(unit_active(app_unit('b')), 'active', 'the busy apps were not stopped (b)');
is(unit_active(app_unit('c')), 'active', 'the busy apps were not stopped (c)');

# -- helperd restarted: the last figures stay, so the budget still holds: a stops the least
#    recently used of b and c (both idle now; their requests ended at about the same time)
stop_daemon('helperd');
start_helperd();
$r = get('a');
is($r->{status}, 200, 'a served once b and c are idle again');
ok(wait_log_line(nginx_error_log(), qr/stopping app "[bc]", the least recently used, to make room for app "a"/,
    timeout => 5), 'after a helperd restart, the budget is still held: b or c stopped for a');

done_testing();
