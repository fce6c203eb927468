#!/usr/bin/perl
# Warm requests connect through the module's peer (issue #11, items 2 and 5): a cached
# keepalive connection is still used (the wrapper connects only when the balancer hands it a
# fresh address), and a request to an app whose socket refuses, from a location without
# ondemand_app (nothing to hold it with), gets 502 and makes the app cold, so that the next
# request starts it.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sandbox_up();
my $s = fault_stack(workers => 1, apps => [
    ka => { ondemand => 'idle_timeout=0; keepalive 4' },
], locations => <<'EOF2');
        location /ka { ondemand_app $http_x_app; proxy_pass http://$http_x_app;
                       proxy_http_version 1.1; proxy_set_header Connection ""; }
        location /plain { ondemand_app off; proxy_pass http://ka; }
EOF2
my $port = $s->{port};

# established connections whose server end is the app's socket
sub app_conns {
    my ($out) = run_cmd('ss', '-xnH', 'state', 'established');
    my $sock = app_socket('ka');
    return scalar grep { /\Q$sock\E/ } split /\n/, $out;
}

my $r = http_get($port, '/ka', headers => { 'X-App' => 'ka' }, timeout => 30);
is($r->{status}, 200, 'ka: started');
my $pid = $r->{headers}{'x-pid'};
for (1 .. 20) {
    $r = http_get($port, '/ka', headers => { 'X-App' => 'ka' });
    last unless $r->{status} == 200;
}
is($r->{status}, 200, '20 warm requests with keepalive: 200');
ok(wait_for(sub { app_conns() >= 1 }, timeout => 5), 'an upstream connection stays open (cached)');
cmp_ok(app_conns(), '<=', 1, 'one worker, sequential requests: one cached connection, reused');

# the app dies behind nginx's back; helperd is stopped first so that no DOWN comes
stop_daemon('helperd');
my $from = log_size(nginx_error_log());
ok(kill_app_main(app_unit('ka')), 'ka: main process SIGKILLed');
$r = http_get($port, '/plain', timeout => 30);
is($r->{status}, 502, 'a refused connect without ondemand_app: 502 (nothing holds the request)');
ok(wait_log_line(nginx_error_log(), qr/app "ka" is not running, made it cold/, from => $from,
    timeout => 5), 'the app is made cold');
start_helperd();
$r = http_get($port, '/ka', headers => { 'X-App' => 'ka' }, timeout => 30);
is($r->{status}, 200, 'the next request starts the app');
isnt($r->{headers}{'x-pid'}, $pid, 'from a new process');

done_testing();
