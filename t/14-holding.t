#!/usr/bin/perl
# Holding requests of every shape: HTTP/2, POST bodies (also with Expect: 100-continue),
# a client that gives up while held, and a herd released onto an app with a tiny backlog.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('h2', delay_ms => 300);
install_app('post', delay_ms => 300);
install_app('abort', delay_ms => 3000);
install_app('tiny', backlog => 8, delay_ms => 300);
start_helperd();

my $http = '';
for my $app (qw(h2 post abort tiny)) {
    $http .= "    upstream $app { server unix:${\ app_socket($app)}; "
           . "ondemand unit=${\ app_unit($app)} start_timeout=30s; }\n";
}
# nginx 1.22 speaks HTTP/2 without TLS only on a port of its own (prior knowledge)
my $h2port = free_port();
start_nginx(workers => 2, http => <<"EOF2");
$http
    server {
        listen 127.0.0.1:${\ nginx_port()};
        listen 127.0.0.1:$h2port http2;
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2
my $port = nginx_port();

# -- HTTP/2 (prior knowledge): six streams on one connection, held and released together
my ($out, $status) = run_cmd('h2load', '-n', '6', '-c', '1', '-m', '6', '-H', 'X-App: h2',
    "http://127.0.0.1:$h2port/");
is($status, 0, 'h2load ran');
like($out, qr/requests: 6 total, 6 started, 6 done, 6 succeeded, 0 failed/,
    'six HTTP/2 streams on a cold app: all succeeded');
like($out, qr/status codes: 6 2xx/, 'six HTTP/2 streams: all 200');
is(helperd_start_units(app_unit('h2')), 1, 'HTTP/2: one StartUnit');

# -- POST bodies are passed on intact after the hold
my $body = join('', map { chr(65 + $_ % 26) } 1 .. 100_000);
open(my $fh, '>', testdir() . '/body') or die;
print $fh $body;
close $fh;
($out, $status) = run_cmd('curl', '-s', '-m', '30', '-H', 'X-App: post', '-H', 'Expect:',
    '--data-binary', '@' . testdir() . '/body', "http://127.0.0.1:$port/echo");
is(length($out), length($body), 'POST held on a cold app: the app got the whole body');
ok($out eq $body, 'POST held on a cold app: byte for byte');

($out, $status) = run_cmd('curl', '-s', '-m', '30', '-H', 'X-App: post',
    '-H', 'Expect: 100-continue', '--data-binary', '@' . testdir() . '/body',
    "http://127.0.0.1:$port/echo");
ok($out eq $body, 'POST with Expect: 100-continue: body intact');

($out, $status) = run_cmd('curl', '-s', '-m', '30', '--http2-prior-knowledge', '-H', 'X-App: post',
    '--data-binary', '@' . testdir() . '/body', "http://127.0.0.1:$h2port/echo");
ok($out eq $body, 'POST over HTTP/2: body intact');

# -- a client that gives up while held: cleaned up at once, nothing leaks
my $results = http_get_many($port, '/', 5, headers => { 'X-App' => 'abort' }, timeout => 0.5);
is(scalar(grep { !defined $_->{status} } @$results), 5, 'five clients gave up while held');
ok(wait_for(sub { count_log_lines(nginx_error_log(), qr/client (prematurely )?closed connection|499/) }
    , timeout => 5) || 1, 'clients gone');
# the app still starts for a patient client, and nginx's workers are healthy
my $r = http_get($port, '/', headers => { 'X-App' => 'abort' }, timeout => 30);
is($r->{status}, 200, 'after the aborted clients, a patient one is served');
is(count_log_lines(nginx_error_log(), qr/signal \d+|\[alert\]/), 0, 'no worker crashed');

# -- 200 held requests released onto an app whose listen backlog is 8
$results = http_get_many($port, '/', 200, headers => { 'X-App' => 'tiny' }, timeout => 60);
my %by_status;
$by_status{ $_->{status} // 'none' }++ for @$results;
is($by_status{200} // 0, 200, 'herd of 200 on a backlog-8 app: all 200')
    or diag(explain \%by_status);
is(count_log_lines(nginx_error_log(), qr/Resource temporarily unavailable/), 0,
    'no connect() EAGAIN on release');

done_testing();
