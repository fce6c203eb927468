#!/usr/bin/perl
# The walking skeleton end to end: a cold request starts a real systemd unit through helperd
# and is answered; warm requests involve no helperd; a herd makes one start; deadlines hold.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('blog');
install_app('herd');
install_app('stuck', never_listen => 1);
start_helperd();

my $upstreams = '';
for my $app (qw(blog herd stuck)) {
    my $timeout = $app eq 'stuck' ? '2s' : '20s';
    $upstreams .= <<"EOF";
    upstream $app {
        server unix:${\ app_socket($app)};
        ondemand unit=${\ app_unit($app)} start_timeout=$timeout;
    }
EOF
}
start_nginx(http => <<"EOF");
$upstreams
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / {
            ondemand_app \$http_x_app;
            proxy_pass http://\$http_x_app;
        }
    }
EOF

# -- a cold request starts the unit and is answered by the app
is(unit_active(app_unit('blog')), 'inactive', 'blog is not running before its first request');
my $cold = http_get(nginx_port(), '/hello', headers => { 'X-App' => 'blog' }, timeout => 30);
is($cold->{status}, 200, 'cold request: 200');
like($cold->{body}, qr/^app=blog pid=\d+ path=\/hello$/m, 'cold request: answered by the app');
is(unit_active(app_unit('blog')), 'active', 'the unit is active in systemd afterwards');
is(helperd_start_units(app_unit('blog')), 1, 'one StartUnit for the cold request');

# -- a warm request: straight to the app, helperd sees nothing
my $helperd_lines = log_size(helperd_log());
my $warm = http_get(nginx_port(), '/again', headers => { 'X-App' => 'blog' });
is($warm->{status}, 200, 'warm request: 200');
is($warm->{headers}{'x-pid'}, $cold->{headers}{'x-pid'}, 'warm request: same app process');
is(count_log_lines(helperd_log(), qr/\b(START|WAIT)\b/, from => $helperd_lines), 0,
    'warm request: helperd received nothing');

# -- 20 concurrent requests on a cold app: all 200, one start
my $results = http_get_many(nginx_port(), '/', 20, headers => { 'X-App' => 'herd' },
    timeout => 30);
is(scalar(grep { ($_->{status} // 0) == 200 } @$results), 20, 'herd of 20: all 200');
my %pids = map { ($_->{headers}{'x-pid'} // 'none') => 1 } @$results;
is(scalar(keys %pids), 1, 'herd of 20: all answered by one app process');
is(helperd_start_units(app_unit('herd')), 1, 'herd of 20: exactly one StartUnit');

# -- an app that never becomes ready: 504 after its start timeout, with the reason logged
my $stuck = http_get(nginx_port(), '/', headers => { 'X-App' => 'stuck' }, timeout => 30);
is($stuck->{status}, 504, 'never-ready app: 504');
ok(wait_log_line(nginx_error_log(), qr/ondemand: app "stuck" not ready within 2000 ms/,
    timeout => 5), 'never-ready app: the error log says why');

# -- an unknown app name: 404, not a hang
my $unknown = http_get(nginx_port(), '/', headers => { 'X-App' => 'nosuch' });
is($unknown->{status}, 404, 'an app name that is not configured: 404');

done_testing();
