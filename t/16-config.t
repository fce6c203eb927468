#!/usr/bin/perl
# Configuration: every bad directive or value is refused by `nginx -t` with an error naming
# it; 10,000 apps load.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

my $dir = testdir();
sub nginx_t {
    my ($http, %o) = @_;
    my $zone = $o{zone} // 'ondemand_zone ondemand:1m;';
    my $helper = $o{helper} // "ondemand_helper unix:$dir/helperd.sock;";
    # the skeleton without its own zone and helper lines: these tests write (or omit) them
    write_nginx_conf($dir, zone => '', helper => '', workers => 1, http => "$zone\n$helper\n$http");
    return run_cmd('/usr/sbin/nginx', '-t', '-p', $dir, '-c', "$dir/nginx.conf");
}

sub upstream { "upstream $_[0] { server unix:/run/ondemand/apps/$_[0]/app.sock; ondemand $_[1]; }" }

my @bad = (
    [ upstream('a', 'ready=connect'), qr/"ondemand" in upstream "a" needs unit=/ ],
    [ upstream('a', 'unit=nope'), qr/invalid systemd unit name "nope"/ ],
    [ upstream('a', 'unit=a@.service'), qr/invalid systemd unit name "a\@\.service"/ ],
    [ upstream('a', 'unit=a.service ready=tcp'), qr/invalid ready mode "tcp"/ ],
    [ upstream('a', 'unit=a.service ready=http:health'), qr/invalid ready mode "http:health"/ ],
    [ upstream('a', 'unit=a.service start_timeout=soon'), qr/invalid value "start_timeout=soon"/ ],
    [ upstream('a', 'unit=a.service start_timeout=0'), qr/invalid value "start_timeout=0"/ ],
    [ upstream('a', 'unit=a.service start_timeout=25h'), qr/invalid value "start_timeout=25h"/ ],
    [ upstream('a', 'unit=a.service idle_timeout=-1'), qr/invalid value "idle_timeout=-1"/ ],
    [ upstream('a', 'unit=a.service queue=0'), qr/invalid value "queue=0"/ ],
    [ upstream('a', 'unit=a.service stop_timeout=0'), qr/invalid value "stop_timeout=0"/ ],
    [ upstream('a', 'unit=a.service frozen_timeout=x'), qr/invalid value "frozen_timeout=x"/ ],
    [ upstream('a', 'unit=a.service release=x'), qr/invalid value "release=x"/ ],
    [ upstream('a', 'unit=a.service failed_status=500'),
      qr/invalid "failed_status=500", expected 502 or 503/ ],
    [ upstream('a', 'unit=a.service colour=blue'), qr/invalid parameter "colour=blue"/ ],
    [ upstream('a', 'unit=a.service socket=relative.sock'),
      qr/invalid socket path "relative.sock"/ ],
    [ 'upstream a2 { server unix:/x; ondemand unit=a.service; ondemand unit=a.service; }',
      qr/"ondemand" directive is duplicate/ ],
    [ 'upstream bad!name { server unix:/x; ondemand unit=a.service; }',
      qr/upstream name "bad!name" is not a valid ondemand app name/ ],
    [ 'upstream two { server unix:/a; server unix:/b; ondemand unit=a.service; }',
      qr/ondemand app "two": the upstream needs exactly one "server unix:\.\.\."/ ],
    [ 'upstream tcp { server 127.0.0.1:9; ondemand unit=a.service; }',
      qr/ondemand app "tcp": the upstream needs exactly one "server unix:\.\.\."/ ],
    [ 'server { location / { ondemand_app a; ondemand_app b; } }',
      qr/"ondemand_app" directive is duplicate/ ],
    [ 'ondemand_helper_timeout forever;', qr/"ondemand_helper_timeout" directive invalid value/ ],
    [ 'ondemand_max_running many;', qr/"ondemand_max_running" directive invalid number/ ],
);
for my $case (@bad) {
    my ($http, $re) = @$case;
    my ($out, $status) = nginx_t($http);
    isnt($status, 0, "refused: $http");
    like($out, $re, "error names the problem: $re");
}

my ($out, $status) = nginx_t(upstream('a', 'unit=a.service'), zone => '');
like($out, qr/"ondemand" is used but "ondemand_zone" is not set/, 'missing zone is named');
($out, $status) = nginx_t(upstream('a', 'unit=a.service'), helper => '');
like($out, qr/"ondemand" is used but "ondemand_helper" is not set/, 'missing helper is named');
($out, $status) = nginx_t('', zone => 'ondemand_zone nocolon;');
like($out, qr/invalid ondemand_zone "nocolon", expected name:size/, 'bad zone is named');
($out, $status) = nginx_t('', helper => 'ondemand_helper 127.0.0.1:80;');
like($out, qr/ondemand_helper "127.0.0.1:80" must be a unix: socket/, 'a TCP helper is refused');

# -- a good configuration with every parameter
($out, $status) = nginx_t(
    upstream('full', 'unit=ondemand-podman@full.service ready=http:/healthz start_timeout=10s '
        . 'idle_timeout=10m stop_timeout=20s queue=50 release=16 failed_status=503 keep_warm '
        . 'freeze frozen_timeout=2h '
        . 'socket=/run/ondemand/apps/full/other.sock')
    . ' server { location / { ondemand_app $host; } }');
is($status, 0, 'every parameter accepted') or diag($out);

# -- 10,000 apps
my $many = join("\n", map { upstream("app$_", "unit=ondemand-exec\@app$_.service") } 1 .. 10_000);
($out, $status) = nginx_t($many . ' server { location / { ondemand_app $host; proxy_pass http://$host; } }',
    zone => 'ondemand_zone ondemand:11m;');
is($status, 0, '10,000 apps load in 11m (about 1 KB each, docs/directives.md)') or diag($out);
($out, $status) = nginx_t($many, zone => 'ondemand_zone ondemand:64k;');
like($out, qr/ondemand_zone "ondemand" is too small: \d+ of 10000 apps did not fit/,
    'a zone too small is named, with how many apps did not fit');

done_testing();
