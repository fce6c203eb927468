#!/usr/bin/perl
# Fault suite (issue #11, 2): a burst of 10,000 connections at once onto a running app whose
# listen backlog is 128 (the test app's default). Plain proxy_pass gets EAGAIN 502s here
# (docs/BENCHMARKS.md, section 7); through the module every request is answered 200, none fails
# on EAGAIN, and the app is never marked cold.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

plan skip_all => 'h2load not installed (nghttp2-client)' unless grep { -x "$_/h2load" } split /:/, $ENV{PATH};

my $N = 10_000;
sandbox_up();
install_app('burst');
start_helperd();
start_nginx(connections => 16384, nofile => 20000, http => <<"EOF2");
    upstream burst { server unix:${\ app_socket('burst')}; ondemand unit=${\ app_unit('burst')} idle_timeout=0; }
    server {
        listen 127.0.0.1:${\ nginx_port()} reuseport backlog=16384;
        location / { ondemand_app burst; proxy_pass http://burst; }
    }
EOF2
my $port = nginx_port();
is(http_get($port, '/', timeout => 30)->{status}, 200, 'the app runs');

my $from = log_size(nginx_error_log());
my $h = h2load('--h1', '-n', $N, '-c', $N, '-T', '60', "http://127.0.0.1:$port/");
is($h->{done}, $N, "$N connections, one request each: all done") or diag($h->{out});
is($h->{'2xx'}, $N, 'every answer 200')
    or diag("2xx $h->{'2xx'}, 5xx $h->{'5xx'}, failed $h->{failed}");
is(count_log_lines(nginx_error_log(), qr/Resource temporarily unavailable/, from => $from), 0,
    'no connect() failed on EAGAIN');
is(count_log_lines(nginx_error_log(), qr/did not accept a connection|is not running/, from => $from), 0,
    'the app was never marked cold');

done_testing();
