#!/usr/bin/perl
# The shipped example nginx configuration (units/examples/nginx-ondemand.conf), as an operator
# installs it: a known host reaches its app, an unknown host is answered 404 (not 500 with an
# "invalid URL prefix" error).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('ex');
start_helperd();

# The include that `ondemandctl gen-nginx` writes, pointing at the test's app.
my $include = testdir() . '/ondemand-apps.conf';
open(my $inc, '>', $include) or die "$include: $!";
print $inc <<"EOF2";
map \$host \$app {
    hostnames;
    default "";
    known.example.com ex;
}
upstream ex { server unix:${\ app_socket('ex')}; ondemand unit=${\ app_unit('ex')}; }
EOF2
close $inc;

# The example as shipped; the harness sets the zone and the helper itself.
my $example = repo_root() . '/units/examples/nginx-ondemand.conf';
open(my $fh, '<', $example) or die "$example: $!";
my $conf = do { local $/; <$fh> };
close $fh;
$conf =~ s/^ondemand_(zone|helper)\s.*\n//mg;
$conf =~ s{include /etc/nginx/ondemand-apps.conf;}{include $include;};
$conf =~ s/listen 80;/listen 127.0.0.1:${\ nginx_port()};/;
my $metrics_port = free_port();
like($conf, qr/listen 127\.0\.0\.1:9145;/, 'the example serves metrics on loopback');
$conf =~ s/listen 127\.0\.0\.1:9145;/listen 127.0.0.1:$metrics_port;/;
like($conf, qr/include \Q$include\E/, 'the example includes the generated app list');

start_nginx(http => $conf);

my $known = http_get(nginx_port(), '/', host => 'known.example.com', timeout => 30);
is($known->{status}, 200, 'a known host reaches its app');

my $unknown = http_get(nginx_port(), '/', host => 'nobody.example.com');
is($unknown->{status}, 404, 'an unknown host is answered 404');
is(count_log_lines(nginx_error_log(), qr/invalid URL prefix|\[crit\]/), 0,
    'no "invalid URL prefix" or [crit] line for it');

my $metrics = http_get($metrics_port, '/ondemand-metrics', timeout => 10);
is($metrics->{status}, 200, 'the example\'s metrics location answers');
like($metrics->{body}, qr/^ondemand_app_requests_total\{app="ex",unit="[^"]+",outcome="cold"\} 1$/m,
    'and counts the known host\'s cold request');

done_testing();
