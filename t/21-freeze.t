#!/usr/bin/perl
# Freeze instead of stop: an idle app with `freeze` is frozen by systemd (cgroup v2 freezer,
# in the sandbox's own cgroup2 namespace), a request thaws it (the same process answers), and
# a frozen app is stopped after frozen_timeout.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;

sandbox_up();
install_app('ice');
start_helperd();
start_nginx(http => <<"EOF2");
    upstream ice {
        server unix:${\ app_socket('ice')};
        ondemand unit=${\ app_unit('ice')} idle_timeout=300ms freeze frozen_timeout=3s;
    }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app ice; proxy_pass http://ice; }
    }
EOF2

sub freezer_state { scalar systemctl('show', '-p', 'FreezerState', '--value', app_unit('ice')) =~ s/\s+$//r }

my $r = http_get(nginx_port(), '/', timeout => 30);
is($r->{status}, 200, 'cold request served');

my $from = log_size(nginx_error_log());
ok(wait_log_line(nginx_error_log(), qr/app "ice" idle for 300 ms, freezing/, timeout => 10),
    'idle: freezing');
ok(wait_log_line(nginx_error_log(), qr/app "ice" frozen/, timeout => 10), 'FROZEN');
is(freezer_state(), 'frozen', 'systemd: FreezerState=frozen');
is(unit_active(app_unit('ice')), 'active', 'systemd: the unit is still active');

my $thawed = http_get(nginx_port(), '/', timeout => 30);
is($thawed->{status}, 200, 'a request to the frozen app is served');
is($thawed->{headers}{'x-pid'}, $r->{headers}{'x-pid'}, 'by the same process: thawed, not restarted');
is(helperd_start_units(app_unit('ice')), 1, 'no second StartUnit');
is(freezer_state(), 'running', 'systemd: FreezerState=running again');

ok(wait_log_line(nginx_error_log(), qr/app "ice" frozen for 3000 ms, stopping/, timeout => 15),
    'frozen past frozen_timeout: stopping');
ok(wait_for(sub { unit_active(app_unit('ice')) eq 'inactive' }, timeout => 10),
    'the frozen app is stopped');
is(http_get(nginx_port(), '/', timeout => 30)->{status}, 200, 'and started again on demand');

done_testing();
