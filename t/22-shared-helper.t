#!/usr/bin/perl
# Two nginx instances (each with its own zone) share one helperd and one app. The one with the
# short idle timeout may not stop the app while the other still uses it: helperd refuses the
# STOP (each nginx reports its use with USE), and the app stops once neither uses it.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('shared');
start_helperd();

sub site {
    my ($idle) = @_;
    return <<"EOF";
    upstream shared {
        server unix:${\ app_socket('shared')};
        ondemand unit=${\ app_unit('shared')} idle_timeout=$idle;
    }
    server {
        listen 127.0.0.1:PORT;
        location / { ondemand_app shared; proxy_pass http://shared; }
    }
EOF
}

# nginx A: the stack's own, idle_timeout=500ms
my $http_a = site('500ms');
$http_a =~ s/PORT/${\ nginx_port()}/;
start_nginx(http => $http_a);

# nginx B: a second instance with its own zone and an idle timeout of 4 s
my $dir_b = testdir() . '/nginx-b';
make_path("$dir_b/tmp");
my $port_b = free_port();
my $http_b = site('4s');
$http_b =~ s/PORT/$port_b/;
write_nginx_conf($dir_b, workers => 1, zone => 'ondemand_b:1m', helper_timeout => '5s', http => $http_b);
start_daemon(name => 'nginx-b', cmd => [ '/usr/sbin/nginx', '-p', $dir_b, '-c', "$dir_b/nginx.conf",
    '-g', 'daemon off;' ], log => "$dir_b/stderr.log", ready_port => $port_b, stop_signal => 'QUIT');

# Each worker names its nginx in HELLO: A's two workers share one instance name (their USE
# leases are one nginx's), B's worker has another.
my $hello = qr/client \d+ belongs to instance (\S+)/;
ok(wait_for(sub { count_log_lines(helperd_log(), $hello) >= 3 }, timeout => 10,
    what => 'three workers to say HELLO'), 'every worker says HELLO');
my %instances;
open(my $log, '<', helperd_log()) or die;
while (<$log>) { $instances{$1}++ if /$hello/ }
close $log;
is_deeply([ sort { $a <=> $b } values %instances ], [ 1, 2 ], 'A: one instance for its 2 workers; B: another')
    or diag explain \%instances;

my $a = http_get(nginx_port(), '/', timeout => 30);
is($a->{status}, 200, 'A: cold start');
my $b = http_get($port_b, '/', timeout => 30);
is($b->{status}, 200, 'B: served');
is($b->{headers}{'x-pid'}, $a->{headers}{'x-pid'}, 'B: by the app A started');
is(helperd_start_units(app_unit('shared')), 1, 'one StartUnit for both');

ok(wait_log_line(nginx_error_log(), qr/app "shared" not stopped, another nginx uses it: in-use/, timeout => 10),
    "A's idle stop is refused while B uses the app");
is(unit_active(app_unit('shared')), 'active', 'the app keeps running');
my $again = http_get($port_b, '/');
is($again->{status}, 200, 'B: still served warm');
is($again->{headers}{'x-pid'}, $a->{headers}{'x-pid'}, 'B: by the same process');

ok(wait_for(sub { unit_active(app_unit('shared')) eq 'inactive' }, timeout => 20,
    what => 'the app to stop once neither nginx uses it'), 'stopped once neither uses it');
is(count_log_lines("$dir_b/error.log", qr/\[(alert|crit)\]/), 0, 'B: no alert');

done_testing();
