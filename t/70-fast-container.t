#!/usr/bin/perl
# KIND=oci end to end (issue #16): the OCI runtime (crun) as the unit's main process on a bundle
# that `ondemandctl prepare` made ahead of time from a podman image (units/ondemand-oci@.service).
# The same steps as the podman kinds (t/40-podman.t: cold start, warm request, killed from
# outside, idle stop, missing image), then freeze and thaw, and prepare's own behaviour (up to
# date, a changed image makes the bundle stale and prepare rebuilds it).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

plan skip_all => 'podman and crun are needed' unless -x '/usr/bin/podman' && -x '/usr/bin/crun';

sandbox_up();
podman_setup();
install_template('ondemand-oci@.service');

my $ctl = repo_root() . '/build/bin/ondemandctl';
# what /etc/ondemand/apps, /var/lib/ondemand/oci and /run/ondemand/apps are on a host: the
# sandbox manager's %E/ondemand/apps, %S/ondemand/oci (%S is $XDG_CONFIG_HOME for a user manager)
# and %t/ondemand/apps
my %ctl_env = (ONDEMAND_APPS_DIR => conf_dir() . '/apps', ONDEMAND_OCI_DIR => conf_dir() . '/oci',
    ONDEMAND_SOCKET_DIR => "$ENV{XDG_RUNTIME_DIR}/ondemand/apps");
sub ctl {
    local @ENV{ keys %ctl_env } = values %ctl_env;
    return run_cmd($ctl, @_);
}
my $crun_root = "$ENV{XDG_RUNTIME_DIR}/ondemand-oci";
# the suite's engine CLI: `ps` lists the running containers, `kill NAME` sends SIGTERM
sub crun {
    my ($verb, @rest) = @_;
    return run_cmd('/usr/bin/crun', "--root=$crun_root", 'list', '-q') if $verb eq 'ps';
    return run_cmd('/usr/bin/crun', "--root=$crun_root", 'kill', $rest[0], 'TERM') if $verb eq 'kill';
    die "crun: $verb?";
}

for my $app (qw(oc ice)) {
    write_app_conf($app, KIND => 'oci', IMAGE => image_name(),
        CMD => "/bin/ondemand-testapp --socket /run/ondemand/app.sock --name $app");
}
write_app_conf('noimg', KIND => 'oci', IMAGE => 'localhost/ondemand-nosuch:latest',
    CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name noimg');

# -- prepare: ahead of time, never on a request's path
my ($out, $st) = ctl('prepare', 'oc', 'ice');
is($st, 0, 'prepare oc ice: exit 0') or diag($out);
ok(-f conf_dir() . "/oci/$_/config.json" && -d conf_dir() . "/oci/$_/rootfs/bin", "prepare: $_\'s bundle")
    for qw(oc ice);
($out, $st) = ctl('prepare', 'oc');
is($st, 0, 'prepare again: exit 0');
like($out, qr/oc: up to date/, 'prepare again: up to date, nothing rebuilt');
($out, $st) = ctl('prepare', 'noimg');
isnt($st, 0, 'prepare noimg: fails');
like($out, qr/localhost\/ondemand-nosuch:latest/, 'prepare noimg: names the missing image');
($out, $st) = ctl('check');
like($out, qr/noimg\.conf.*not prepared.*ondemandctl prepare noimg/, 'check: reports the unprepared bundle');

start_helperd();
container_suite(engine => 'crun', cli => \&crun, shapes => { oc => 'ondemand-oci' },
    unit_of => sub { "ondemand-oci\@$_[0].service" }, missing_image => 'localhost/ondemand-nosuch:latest',
    missing_status => 'not prepared: run ondemandctl prepare noimg (image localhost/ondemand-nosuch:latest)',
    extra_http => <<~"EOF");
    upstream ice {
        server unix:${\ container_socket('ice')};
        ondemand unit=ondemand-oci\@ice.service idle_timeout=300ms freeze frozen_timeout=3s;
    }
    EOF

# -- freeze: systemd freezes the unit's cgroup, container included; a request thaws it
my $unit = 'ondemand-oci@ice.service';
sub freezer_state { scalar systemctl('show', '-p', 'FreezerState', '--value', $unit) =~ s/\s+$//r }
sub main_pid { scalar systemctl('show', '-p', 'MainPID', '--value', $unit) =~ s/\s+$//r }
my $get = sub { http_get(nginx_port(), $_[0], headers => { 'X-App' => 'ice' }, timeout => 30) };
my $from = log_size(nginx_error_log());
is($get->('/cold')->{status}, 200, 'freeze: cold request served');
my $pid = main_pid();
ok(wait_log_line(nginx_error_log(), qr/app "ice" frozen/, from => $from, timeout => 10), 'freeze: FROZEN');
is(freezer_state(), 'frozen', 'freeze: systemd FreezerState=frozen');
is($get->('/thawed')->{status}, 200, 'freeze: a request to the frozen app is served');
is(main_pid(), $pid, 'freeze: by the same crun: thawed, not restarted');
is(helperd_start_units($unit), 1, 'freeze: no second StartUnit');

# -- a changed image: check says stale, prepare rebuilds, the next start runs the new bundle
my $old = podman('image', 'inspect', '--format', '{{.Id}}', image_name());
podman('import', '-q', '--change', 'ENV=OD_MARK=2', build_image(), image_name());
isnt(podman('image', 'inspect', '--format', '{{.Id}}', image_name()), $old, 'a new image under the same name');
($out, $st) = ctl('check');
like($out, qr/oc\.conf.*stale.*ondemandctl prepare oc/, 'check: the bundle is stale');
($out, $st) = ctl('prepare', 'oc');
is($st, 0, 'prepare after the image changed: exit 0') or diag($out);
like($out, qr/oc: prepared/, 'prepare: rebuilt');
($out, $st) = ctl('check');
unlike($out, qr/oc\.conf.*stale/, 'check: no longer stale');

done_testing();
