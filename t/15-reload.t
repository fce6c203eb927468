#!/usr/bin/perl
# Operations: the shared state survives `nginx -s reload` (a warm app stays warm, no new
# start); a graceful quit finishes the requests it holds.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('blog');
install_app('late', delay_ms => 1500);
install_app('orphan', delay_ms => 1500);
install_app('held', delay_ms => 1500);
start_helperd();

my %conf = (http => <<"EOF2");
    upstream blog { server unix:${\ app_socket('blog')}; ondemand unit=${\ app_unit('blog')}; }
    upstream late { server unix:${\ app_socket('late')}; ondemand unit=${\ app_unit('late')}; }
    upstream held { server unix:${\ app_socket('held')}; ondemand unit=${\ app_unit('held')}; }
    upstream orphan { server unix:${\ app_socket('orphan')}; ondemand unit=${\ app_unit('orphan')} start_timeout=20s; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2
start_nginx(%conf);

my $r = http_get(nginx_port(), '/', headers => { 'X-App' => 'blog' }, timeout => 30);
is($r->{status}, 200, 'blog started');

my $before_reload = log_size(helperd_log());
reload_nginx(%conf);
my $from = log_size(helperd_log());
my $after = http_get(nginx_port(), '/', headers => { 'X-App' => 'blog' });
is($after->{status}, 200, 'after reload: served');
is($after->{headers}{'x-pid'}, $r->{headers}{'x-pid'}, 'after reload: the same app process');
is(count_log_lines(helperd_log(), qr/\b(START|WAIT)\b/, from => $from), 0,
    'after reload: served warm, helperd not asked');
is(helperd_start_units(app_unit('blog')), 1, 'after reload: still one StartUnit');
# The new workers name the same nginx instance as the old ones (HELLO, kept in the zone), so
# their use leases stay one nginx's.
my $hello = qr/client \d+ belongs to instance (\S+)/;
ok(wait_for(sub { count_log_lines(helperd_log(), $hello, from => $before_reload) >= 2 }, timeout => 10,
    what => "the new workers' HELLO"), 'after reload: the new workers say HELLO');
my %instances;
open(my $hl, '<', helperd_log()) or die;
while (<$hl>) { $instances{$1}++ if /$hello/ }
close $hl;
is(scalar(keys %instances), 1, 'after reload: one instance name for old and new workers')
    or diag explain \%instances;

# -- a reload while a request is held: the old worker finishes it
{
    my $pid = fork();
    if ($pid == 0) {
        my $res = http_get(nginx_port(), '/', headers => { 'X-App' => 'held' }, timeout => 30);
        exit(($res->{status} // 0) == 200 ? 0 : 1);
    }
    ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('held')}\E/, timeout => 10),
        'a request is held');
    reload_nginx(%conf);
    waitpid($pid, 0);
    is($? >> 8, 0, 'reload while held: the request was answered 200');
}

# -- the worker that owns a start dies: the start is not lost, the next request is served
{
    my $master = daemon_pid('nginx');
    my @workers = Ondemand::Stack::_children($master);
    my $from_h = log_size(helperd_log());
    my @pids;
    # one request per worker connection is enough: every worker then holds one
    for (1 .. 4) {
        my $pid = fork();
        if ($pid == 0) { http_get(nginx_port(), '/', headers => { 'X-App' => 'orphan' }, timeout => 30); exit 0 }
        push @pids, $pid;
    }
    ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('orphan')}\E/, from => $from_h,
        timeout => 10), 'a worker asked for the start');
    kill 'KILL', @workers;    # every worker, the starter among them
    waitpid($_, 0) for @pids;
    ok(wait_for(sub { my @now = Ondemand::Stack::_children($master); @now == @workers }, timeout => 10),
        'nginx started new workers');
    my $res = http_get(nginx_port(), '/', headers => { 'X-App' => 'orphan' }, timeout => 30);
    is($res->{status}, 200, 'after the starting worker died: served');
    is(helperd_start_units(app_unit('orphan')), 1, 'and still one StartUnit');
}

# -- graceful quit while a request is held: it is still answered
my $port = nginx_port();
my $pid = fork();
if ($pid == 0) {
    my $res = http_get($port, '/', headers => { 'X-App' => 'late' }, timeout => 30);
    exit(($res->{status} // 0) == 200 ? 0 : 1);
}
ok(wait_log_line(helperd_log(), qr/StartUnit \Q${\ app_unit('late')}\E/, timeout => 10),
    'the held request asked for a start');
stop_daemon('nginx', signal => 'QUIT', timeout => 30);
waitpid($pid, 0);
is($? >> 8, 0, 'graceful quit: the held request was answered 200');

done_testing();
