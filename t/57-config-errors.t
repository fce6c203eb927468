#!/usr/bin/perl
# Fault suite (issue #11, 8): configuration errors that `nginx -t` must refuse, each with a
# clear message naming the problem: two upstreams with the same unit=, a static
# `ondemand_app` that names no app, and a malformed `ondemand_max_memory`. Each is checked against the same file without the mistake.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

my $dir = testdir() . '/nginx';
my $sock = testdir() . '/apps';

sub conf {
    my ($name, $http) = @_;
    write_nginx_conf($dir, file => "$name.conf", workers => 1,
        helper => "unix:$sock/helperd.sock", http => $http);
    return "$dir/$name.conf";
}

my $server = sub { "server { listen 127.0.0.1:${\ free_port()}; location / { ondemand_app $_[0]; proxy_pass http://$_[0]; } }" };

# -- two upstreams, one unit
my ($ok, $out) = nginx_t(conf('distinct', <<"EOF2" . $server->('blog')));
    upstream blog { server unix:$sock/blog.sock; ondemand unit=ondemand-blog.service; }
    upstream shop { server unix:$sock/shop.sock; ondemand unit=ondemand-shop.service; }
EOF2
ok($ok, 'control: two upstreams with distinct units pass nginx -t') or diag($out);

($ok, $out) = nginx_t(conf('same-unit', <<"EOF2" . $server->('blog')));
    upstream blog { server unix:$sock/blog.sock; ondemand unit=ondemand-blog.service; }
    upstream shop { server unix:$sock/shop.sock; ondemand unit=ondemand-blog.service; }
EOF2
ok(!$ok, 'two upstreams with the same unit= fail nginx -t') or diag($out);
like($out, qr/\[emerg\].*ondemand-blog\.service/, 'the message names the shared unit');
like($out, qr/\[emerg\].*"(blog|shop)"/, 'the message names an app that uses it') or diag($out);

# -- a static ondemand_app that names no app
($ok, $out) = nginx_t(conf('known-app', <<"EOF2" . $server->('blog')));
    upstream blog { server unix:$sock/blog.sock; ondemand unit=ondemand-blog.service; }
EOF2
ok($ok, 'control: a static ondemand_app naming a configured app passes nginx -t') or diag($out);

($ok, $out) = nginx_t(conf('no-such-app', <<"EOF2" . "server { listen 127.0.0.1:${\ free_port()}; location / { ondemand_app nosuchapp; proxy_pass http://blog; } }"));
    upstream blog { server unix:$sock/blog.sock; ondemand unit=ondemand-blog.service; }
EOF2
ok(!$ok, 'a static `ondemand_app nosuchapp;` fails nginx -t') or diag($out);
like($out, qr/\[emerg\].*nosuchapp/, 'the message names the unknown app') or diag($out);

# -- ondemand_max_memory: a size, and an optional expect=SIZE
my $blog = "    upstream blog { server unix:$sock/blog.sock; ondemand unit=ondemand-blog.service; }\n";
($ok, $out) = nginx_t(conf('max-memory', "    ondemand_max_memory 512m expect=48m;\n" . $blog . $server->('blog')));
ok($ok, 'control: `ondemand_max_memory 512m expect=48m;` passes nginx -t') or diag($out);
for my $bad ([ 'lots', qr/invalid ondemand_max_memory size "lots"/ ],
             [ '512m expect=x', qr/invalid ondemand_max_memory expect="x"/ ],
             [ '512m 48m', qr/invalid parameter "48m" of ondemand_max_memory/ ]) {
    ($ok, $out) = nginx_t(conf('max-memory-bad', "    ondemand_max_memory $bad->[0];\n" . $blog . $server->('blog')));
    ok(!$ok, "`ondemand_max_memory $bad->[0];` fails nginx -t") or diag($out);
    like($out, $bad->[1], 'the message says what is wrong') or diag($out);
}

done_testing();
