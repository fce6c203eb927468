#!/usr/bin/perl
# Fault suite (issue #11, 9): subrequests to ondemand apps. An auth_request or mirror
# subrequest to a cold app is held and the app started (never sent to the stopped app's socket
# unannounced), and a long subrequest counts in flight (the app is not idle-stopped under it).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sandbox_up();
my $mlog = testdir() . '/mirror.log';
my $s = fault_stack(
    apps => [
        main  => { ondemand => 'idle_timeout=0' },
        authc => { app => { log_requests => 1, delay_ms => 200 }, ondemand => 'idle_timeout=0' },
        auths => { app => { log_requests => 1 }, ondemand => 'idle_timeout=1s' },
        mir   => { app => { log_requests => 1, delay_ms => 200 }, ondemand => 'idle_timeout=0' },
    ],
    extra_http => "    log_format sub '\$uri \$status \$ondemand_status';\n",
    locations => <<"EOF2");
        location /a1/ { auth_request /_auth_cold; ondemand_app main; proxy_pass http://main; }
        location = /_auth_cold {
            internal; ondemand_app authc;
            proxy_pass_request_body off; proxy_set_header Content-Length "";
            proxy_pass http://authc/auth;
        }
        location /a2/ { auth_request /_auth_slow; ondemand_app main; proxy_pass http://main; }
        location = /_auth_slow {
            internal; ondemand_app auths;
            proxy_pass_request_body off; proxy_set_header Content-Length "";
            proxy_pass http://auths/sleep?ms=4000;
        }
        location /m/ { mirror /_mirror; ondemand_app main; proxy_pass http://main; }
        location = /_mirror {
            internal; ondemand_app mir; log_subrequest on; access_log $mlog sub;
            proxy_pass http://mir/mirrored;
        }
EOF2
my $port = $s->{port};

is(http_get($port, '/', headers => { 'X-App' => 'main' }, timeout => 30)->{status}, 200,
    'the main app runs');

# -- auth_request to a cold app
my $from = log_size(nginx_error_log());
my $r = http_get($port, '/a1/x', timeout => 30);
is($r->{status}, 200, 'auth_request subrequest to a cold app: held, the app started, 200')
    or diag('nginx said: ' . (wait_log_line(nginx_error_log(), qr/\[(error|warn)\]/, from => $from,
        timeout => 0.1) // 'nothing'));
is(scalar(app_log_lines('authc', qr/200 \/auth$/)), 1, 'the auth app answered the subrequest');
is(helperd_start_units(app_unit('authc')), 1, 'the auth app was started once');
is(count_log_lines(nginx_error_log(), qr/connect\(\) to unix:\S+authc\S* failed/, from => $from), 0,
    "nginx never connected to the stopped app's socket");

# -- a long auth_request subrequest (4 s) on an app whose idle_timeout is 1 s
is(http_get($port, '/', headers => { 'X-App' => 'auths' }, timeout => 30)->{status}, 200,
    'auths runs');
$from = log_size(nginx_error_log());
$r = http_get($port, '/a2/x', timeout => 30);
is($r->{status}, 200, 'a 4 s auth subrequest on an app with idle_timeout=1s: 200')
    or diag('nginx said: ' . (wait_log_line(nginx_error_log(), qr/app "auths"|\[error\]/,
        from => $from, timeout => 0.1) // 'nothing'));
is(count_log_lines(nginx_error_log(), qr/app "auths" idle for/, from => $from), 0,
    'the app was not idle-stopped under the subrequest (it counts in flight)');

# -- mirror subrequest to a cold app
$from = log_size(nginx_error_log());
$r = http_get($port, '/m/x', timeout => 30);
is($r->{status}, 200, 'the mirrored main request: 200');
my $line = wait_log_line($mlog, qr/^\/_mirror /, timeout => 30, what => 'the mirror subrequest to finish');
like($line // '', qr{^/_mirror 200 }, 'mirror subrequest to a cold app: held, the app started, 200');
is(scalar(app_log_lines('mir', qr/200 \/mirrored$/)), 1, 'the mirror app got the mirrored request');
is(count_log_lines(nginx_error_log(), qr/connect\(\) to unix:\S+mir\S* failed/, from => $from), 0,
    "nginx never connected to the stopped app's socket");

done_testing();
