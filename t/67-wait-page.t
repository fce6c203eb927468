#!/usr/bin/perl
# ondemand_wait_page (issue #14, 2) in a real browser: headless chromium opens a cold app whose
# start takes 4 s, shows ondemand's waiting page, and ends on the app's own content by itself.
# API clients (Accept without text/html) and POSTs are held as before; the page is 503 with
# Retry-After and Cache-Control: no-store; the start is never repeated because of it.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp ();
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

for my $bin ('/usr/bin/chromium', '/usr/bin/chromedriver') {
    plan skip_all => "$bin is missing (make test-deps)" unless -x $bin;
}
my (undef, $status) = run_cmd('/usr/bin/python3', '-c', 'import selenium');
plan skip_all => 'python3-selenium is missing (make test-deps)' if $status != 0;

sandbox_up();
install_app('slow', delay_ms => 4000);
install_app('api', delay_ms => 2000);
install_app('custom', delay_ms => 2000);
install_app('form', delay_ms => 2000);
start_helperd();
my $custom_page = testdir() . '/starting.html';
open(my $fh, '>', $custom_page) or die $!;
print $fh "<html><body><p id=\"ondemand-wait-page\">Our own page: custom is starting</p></body></html>\n";
close $fh;
my $access = testdir() . '/access.log';
my $port = nginx_port();
start_nginx(http => <<"EOF2");
    log_format page '\$request_method \$uri \$status \$ondemand_status \$ondemand_wait_time';
    upstream slow   { server unix:${\ app_socket('slow')};   ondemand unit=${\ app_unit('slow')}; }
    upstream api    { server unix:${\ app_socket('api')};    ondemand unit=${\ app_unit('api')}; }
    upstream custom { server unix:${\ app_socket('custom')}; ondemand unit=${\ app_unit('custom')}; }
    upstream form   { server unix:${\ app_socket('form')};   ondemand unit=${\ app_unit('form')}; }
    server {
        listen 127.0.0.1:$port;
        access_log $access page;
        ondemand_wait_page 1s;
        location / { ondemand_app slow; proxy_pass http://slow; }
        location /api/ { ondemand_app api; proxy_pass http://api; }
        location /form/ { ondemand_app form; proxy_pass http://form; }
        location /custom/ { ondemand_app custom; ondemand_wait_page 500ms $custom_page; proxy_pass http://custom; }
    }
EOF2

# -- the browser
# the browser's profile outside the test dir: its LevelDB *.log files are no test logs
my $profile = File::Temp::tempdir('ondemand-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($out) = run_cmd(repo_root() . '/t/lib/browser-wait-page', "http://127.0.0.1:$port/",
    'app=slow', 60, $profile);
my $b = eval { decode_json((grep { /^\{/ } split /\n/, $out)[-1] // '') };
ok($b, 'the browser script ran') or diag($out);
ok($b->{saw_wait_page}, 'the browser showed the waiting page');
like($b->{final_text} // '', qr/^app=slow pid=\d+ path=\/$/m,
    "and ended on the app's own content by itself (after $b->{seconds} s, "
    . ($b->{reloads} // 0) . ' waiting pages)') or diag($out);
is(helperd_start_units(app_unit('slow')), 1, 'one start: the reloads did not start it again');
ok(wait_log_line($access, qr/^GET \/ 503 wait-page \d+$/, timeout => 5), '$ondemand_status wait-page');
ok(wait_log_line($access, qr/^GET \/ 200 (cold|warm) \d+$/, timeout => 5), 'then 200');

# -- the page as HTTP sees it, and clients that are held as before
my @html = ('Accept' => 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8');
my $page = http_get($port, '/custom/', headers => { @html }, timeout => 30);
is($page->{status}, 503, 'a browser navigation held 500 ms: 503');
like($page->{body}, qr/Our own page: custom is starting/, "the operator's page file");
is($page->{headers}{'cache-control'}, 'no-store', 'Cache-Control: no-store');
ok(defined $page->{headers}{'retry-after'}, 'Retry-After');
like($page->{headers}{'content-type'}, qr{^text/html}, 'Content-Type: text/html');
my $r = http_get($port, '/api/', headers => { 'Accept' => 'application/json' }, timeout => 30);
is($r->{status}, 200, 'an API client (Accept: application/json) is held until the app answers');
like($r->{body}, qr/^app=api /, 'and gets the app');
# nginx writes the access log line after the answer: wait for it
my $api_line = wait_log_line($access, qr/^GET \/api\/ 200 cold \d+$/, timeout => 5);
ok($api_line, 'held, not paged (its access log line says cold)');
my ($waited) = ($api_line // '') =~ /(\d+)$/;
$waited //= 0;
cmp_ok($waited, '>', 1000, "held past the page's 1 s ($waited ms)");
is(count_log_lines($access, qr/wait-page/), count_log_lines($access, qr/^GET \/(custom\/)? 503 wait-page/),
    'only browser navigations got the page');

# -- a POST from a browser form is held, not paged: its body must reach the app
my $post = http_request($port, "POST /form/ HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n"
    . "Content-Length: 0\r\nConnection: close\r\n\r\n", timeout => 30);
is($post->{status}, 200, 'a POST with Accept: text/html on a cold app is held and served');
ok(wait_log_line($access, qr/^POST \/form\/ 200 cold (1\d{3}|[2-9]\d{3}|\d{5,})$/, timeout => 5),
    'held past the page time, not paged');

done_testing();
