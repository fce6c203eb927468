#!/usr/bin/perl
# ondemand_wake (issue #14, 1): requests that may not wake an app (crawlers, uptime checkers,
# scanners, by the shipped map units/examples/nginx-ondemand-wake.conf) get 503 with
# Retry-After at once on a stopped app, start nothing and log no [crit]; they are served while
# the app runs, but do not keep it running.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

my $googlebot = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
my $uptime = 'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)';
my $browser = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';

sandbox_up();
install_app('site');
install_app('never');
start_helperd();
my $wake_map = repo_root() . '/units/examples/nginx-ondemand-wake.conf';
my $access = testdir() . '/access.log';
start_nginx(http => <<"EOF2");
    include $wake_map;
    log_format wake '\$http_x_app \$status \$ondemand_status';
    upstream site {
        server unix:${\ app_socket('site')};
        ondemand unit=${\ app_unit('site')} idle_timeout=2s;
    }
    upstream never {
        server unix:${\ app_socket('never')};
        ondemand unit=${\ app_unit('never')};
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        access_log $access wake;
        location = /metrics { ondemand_metrics; }
        location /off/ { ondemand_app never; ondemand_wake 0; proxy_pass http://never; }
        location / {
            ondemand_app \$http_x_app;
            ondemand_wake \$ondemand_wake_ua;
            proxy_pass http://\$http_x_app;
        }
    }
EOF2

sub get { my ($ua, %o) = @_; http_get(nginx_port(), $o{path} // '/', headers => { 'X-App' => $o{app} // 'site', 'User-Agent' => $ua }, timeout => 30) }
sub access_lines { my ($re) = @_; count_log_lines($access, $re) }

# -- a crawler and an uptime checker on a stopped app
my $r = get($googlebot);
is($r->{status}, 503, 'Googlebot on a stopped app: 503');
is($r->{headers}{'retry-after'}, '5', 'with Retry-After');
is(get($uptime)->{status}, 503, 'UptimeRobot: 503');
is(helperd_start_units(app_unit('site')), 0, 'nothing was started');
is(unit_active(app_unit('site')), 'inactive', 'the app stays stopped');
is(count_log_lines(nginx_error_log(), qr/\[crit\]|\[error\]/), 0, 'no [crit] or [error] line');
ok(wait_log_line($access, qr/^site 503 not-woken$/, timeout => 5), '$ondemand_status is not-woken');
ok(wait_log_line(nginx_error_log(), qr/app "site" is not running and this request may not wake it/,
    timeout => 5), 'the reason is logged (info)');

# -- a person's browser wakes it; then the crawler is served by the running app
my $human = get($browser);
is($human->{status}, 200, 'a browser starts the app');
my $bot = get($googlebot);
is($bot->{status}, 200, 'Googlebot is served while the app runs');
is($bot->{headers}{'x-pid'}, $human->{headers}{'x-pid'}, 'by the same running app');
is(helperd_start_units(app_unit('site')), 1, 'one start in all');

# -- crawler requests do not keep the app running: it stops after its idle timeout anyway
my ($served, $refused) = (0, 0);
ok(wait_for(sub {
    my $s = get($googlebot)->{status};
    $served++ if $s == 200;
    $refused++ if $s == 503;
    unit_active(app_unit('site')) eq 'inactive';
}, timeout => 20, interval => 0.2, what => 'the app to stop despite the crawler'),
    'the app is stopped after its idle timeout although a crawler kept requesting');
cmp_ok($served, '>', 0, "the crawler was served meanwhile ($served requests)");
is(helperd_start_units(app_unit('site')), 1, 'and the crawler started nothing afterwards');

# -- a static `ondemand_wake 0` and an empty value
is(get($browser, path => '/off/')->{status}, 503, 'ondemand_wake 0: a stopped app is not woken');
is(get('', app => 'site')->{status}, 503, 'no User-Agent (the map gives ""): not woken');
is(helperd_start_units(app_unit('never')), 0, 'never was not started');

# -- counted in ondemand_metrics
my $m = http_get(nginx_port(), '/metrics', timeout => 10);
my ($n) = $m->{body} =~ /^ondemand_app_requests_total\{app="site",unit="[^"]+",outcome="not-woken"\} (\d+)$/m;
cmp_ok($n // 0, '>=', 3, "requests_total{outcome=not-woken} counts them ($n)");

done_testing();
