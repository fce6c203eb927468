#!/usr/bin/perl
# $ondemand_status and $ondemand_wait_time in the access log.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('slow', delay_ms => 400);
install_app('crash', exit_before_listen => 3);
install_app('never', never_listen => 1);
start_helperd();

my $log = testdir() . '/access.log';
start_nginx(http => <<"EOF2");
    log_format od '\$http_x_app \$status \$ondemand_status \$ondemand_wait_time';
    upstream slow { server unix:${\ app_socket('slow')}; ondemand unit=${\ app_unit('slow')}; }
    upstream crash { server unix:${\ app_socket('crash')}; ondemand unit=${\ app_unit('crash')}; }
    upstream never { server unix:${\ app_socket('never')}; ondemand unit=${\ app_unit('never')} start_timeout=1s; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        access_log $log od;
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
        location /plain { return 204; }
    }
EOF2

http_get(nginx_port(), '/', headers => { 'X-App' => $_ }, timeout => 30) for qw(slow slow crash never);
http_get(nginx_port(), '/plain');
ok(wait_for(sub { count_log_lines($log, qr/./) >= 5 }, timeout => 10), 'five requests logged');

my @lines = do { open(my $fh, '<', $log) or die; map { chomp; $_ } <$fh> };
my ($cold, $warm, $crash, $never, $plain) = @lines;
like($cold, qr/^slow 200 cold (\d+)$/, 'first request: cold');
my ($ms) = $cold =~ /(\d+)$/;
cmp_ok($ms, '>=', 400, 'cold: the wait covers the app\'s 400 ms start-up') if defined $ms;
like($warm, qr/^slow 200 warm 0$/, 'second request: warm, no wait');
like($crash, qr/^crash 502 failed \d+$/, 'failed start: failed');
like($never, qr/^never 504 timeout \d+$/, 'start timeout: timeout');
like($plain, qr/^- 204 - -$/, 'a request the module does not handle: empty');

done_testing();
