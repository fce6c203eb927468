#!/usr/bin/perl
# A keep_warm app whose start fails is started again without waiting for a request: 1 s after
# the failure, then with a doubling backoff, until it is up.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
# The unit fails (its ExecStartPre) until the test creates the flag file.
my $flag = testdir() . '/flaky.ok';
install_app('flaky', service => "ExecStartPre=/bin/test -e $flag");
start_helperd();
start_nginx(http => <<"EOF");
    upstream flaky {
        server unix:${\ app_socket('flaky')};
        ondemand unit=${\ app_unit('flaky')} keep_warm start_timeout=10s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app flaky; proxy_pass http://flaky; }
    }
EOF

ok(wait_log_line(nginx_error_log(), qr/app "flaky" failed to start: /, timeout => 15),
    'the first start fails, with the reason in the error log');
ok(wait_log_line(nginx_error_log(), qr/keep_warm app "flaky" is started again in 1000 ms/, timeout => 15),
    'started again 1 s later');
ok(wait_log_line(nginx_error_log(), qr/keep_warm app "flaky" is started again in 2000 ms/, timeout => 15),
    'and again: the backoff doubles');
cmp_ok(helperd_start_units(app_unit('flaky')), '>=', 2, 'helperd started the unit again without a request');

open(my $fh, '>', $flag) or die "$flag: $!";
close $fh;
ok(wait_for(sub { unit_active(app_unit('flaky')) eq 'active' && unix_connects(app_socket('flaky')) },
    timeout => 20, what => 'the app to come up once its unit can start'), 'up at a later retry');
cmp_ok(count_log_lines(nginx_error_log(), qr/starting keep_warm app "flaky"/), '>=', 3,
    'each start is logged');
my $r = http_get(nginx_port(), '/', timeout => 30);
is($r->{status}, 200, 'served');
is(count_log_lines(nginx_error_log(), qr/\[(alert|crit|emerg)\]/), 0, 'no alert');

done_testing();
