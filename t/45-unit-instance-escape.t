#!/usr/bin/perl
# An instance name cannot inject shell code into the container templates' `sh -c` scripts.
# A unit name holds only [A-Za-z0-9:_.\-] (and '@'): systemd refuses a raw `$(...)` in StartUnit,
# and `systemd-escape` turns such a name into \xNN escapes, which is what reaches %i. The
# templates pass %t and %i to the script as arguments ($1, $2) and quote them there, so even
# that escaped text arrives byte for byte as data: the container name and volume carry it
# exactly, and nothing runs. podman, docker and crun (ondemand-oci@) are replaced by a recorder
# of their arguments (a copy of each shipped template with only that path changed), so no engine
# is needed. The app file's NETWORK (issue #15) reaches `--network=` the same way: as data.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Containers;
use File::Path qw(make_path);

sandbox_up();
my $dir = testdir();
my $evil = 'x$(touch pwned)`touch pwned2`;touch pwned3';

# What systemd-escape makes of it: no shell metacharacter is left.
my ($esc, $st) = run_cmd('systemd-escape', $evil);
is($st, 0, 'systemd-escape runs');
chomp $esc;
note("systemd-escape '$evil' = $esc");
unlike($esc, qr/[\$\(\)`; '"]/, "the escaped instance has no shell metacharacters: $esc");
like($esc, qr/^[A-Za-z0-9:_.\\-]+$/, 'only unit-name characters');

# A raw name straight to systemd's D-Bus API: refused.
my ($out) = run_cmd('busctl', '--user', 'call', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1',
    'org.freedesktop.systemd1.Manager', 'StartUnit', 'ss', "ondemand-exec\@$evil.service", 'replace');
like($out, qr/invalid|not valid/i, 'StartUnit with a raw $(...) in the name is refused');

# A recorder in place of /usr/bin/podman and /usr/bin/docker.
my $rec = "$dir/recorder";
open(my $fh, '>', $rec) or die $!;
print $fh "#!/bin/sh\n{ echo '--call--'; printf '%s\\n' \"\$@\"; } >> \"$dir/calls.\$(basename \"\$0\")\"\nexit 0\n";
close $fh;
chmod 0755, $rec;
symlink($rec, "$dir/podman") or die;
symlink($rec, "$dir/docker") or die;

# The app file, %E/ondemand/apps/%i.conf. systemd reads EnvironmentFile= through glob(3), where
# the backslashes of an escaped name are escapes: `x\x24...` finds the file `xx24...`. (So an
# app whose name needs escaping cannot have its app file read; ondemandctl's app names,
# [A-Za-z0-9_.-], never need it.) The file gets both names: ConditionPathExists= reads the
# literal one.
(my $globbed = $esc) =~ s/\\//g;
for my $name ($esc, $globbed) {
    my $conf = conf_dir() . "/apps/$name.conf";
    open($fh, '>', $conf) or die "$conf: $!";
    # NETWORK reaches `--network=` from the environment: even a value ondemandctl would refuse
    # stays data
    print $fh "IMAGE=localhost/img:1\nCMD=/bin/app\nNETWORK=\$(touch pwned4)\n";
    close $fh;
}

my $rt = $ENV{XDG_RUNTIME_DIR};
for my $t (qw(podman podman-simple podman-systemd docker)) {
    my $engine = $t eq 'docker' ? 'docker' : 'podman';
    my $file = repo_root() . "/units/ondemand-$t\@.service";
    open($fh, '<', $file) or die $!;
    my $text = do { local $/; <$fh> };
    close $fh;
    my ($script) = $text =~ /^ExecStart=\/bin\/sh -c '(.*?)'/ms;
    unlike($script, qr/%[it]/, "ondemand-$t\@.service: no %i or %t inside the sh -c script");
    $text =~ s{/usr/bin/$engine}{$dir/$engine}g;
    install_unit("ondemand-$t\@.service", $text);
    unlink "$dir/calls.$engine";
    my $unit = "ondemand-$t\@$esc.service";
    my ($o, $s) = systemctl('start', '--no-block', $unit);
    is($s, 0, "$t: start job queued for $unit") or diag($o);
    my $calls;
    ok(wait_for(sub {
        open(my $c, '<', "$dir/calls.$engine") or return 0;
        $calls = do { local $/; <$c> };
        $calls =~ /^run$/m;
    }, timeout => 20, what => "$t: the engine's run call"), "$t: the engine was run");
    my ($run) = ($calls // '') =~ /--call--\nrun\n(.*?)(?=--call--|\z)/s;
    my @args = split /\n/, $run // '';
    my %after;
    for my $i (0 .. $#args - 1) { $after{ $args[$i] } //= $args[$i + 1] }
    is($after{'--name'}, "ondemand-$esc", "$t: the container name carries %i byte for byte");
    is($after{'-v'}, "$rt/ondemand/apps/$esc:/run/ondemand", "$t: so does the socket volume");
    is($args[-1], '/bin/app', "$t: the app file's CMD comes last");
    is(scalar(grep { $_ eq '--network=$(touch pwned4)' } @args), 1,
        "$t: NETWORK reaches --network= byte for byte");
    systemctl('stop', $unit);
    systemctl('reset-failed', $unit);
}
# ondemand-oci@: the script gets the bundle, crun's state directory and %i as $1 $2 $3; crun is
# replaced by the recorder, and the bundle (%S/ondemand/oci/%i, %S = $XDG_CONFIG_HOME here) exists.
{
    my $file = repo_root() . '/units/ondemand-oci@.service';
    open($fh, '<', $file) or die $!;
    my $text = do { local $/; <$fh> };
    close $fh;
    my ($script) = $text =~ /^ExecStart=\/bin\/sh -c '(.*?)'/ms;
    unlike($script, qr/%[itS]/, 'ondemand-oci@.service: no %i, %t or %S inside the sh -c script');
    symlink($rec, "$dir/crun") or die;
    $text =~ s{/usr/bin/crun}{$dir/crun}g;
    install_unit('ondemand-oci@.service', $text);
    my $bundle = conf_dir() . "/oci/$esc";
    make_path($bundle);
    open($fh, '>', "$bundle/config.json") or die $!;
    close $fh;
    my $unit = "ondemand-oci\@$esc.service";
    my ($o, $s) = systemctl('start', '--no-block', $unit);
    is($s, 0, "oci: start job queued for $unit") or diag($o);
    my $calls;
    ok(wait_for(sub {
        open(my $c, '<', "$dir/calls.crun") or return 0;
        $calls = do { local $/; <$c> };
        $calls =~ /^run$/m;
    }, timeout => 20, what => 'oci: crun run'), 'oci: crun was run');
    my ($run) = ($calls // '') =~ /--call--\n(--root=.*?\nrun\n.*?)(?=--call--|\z)/s;
    my @args = split /\n/, $run // '';
    is_deeply(\@args, [ "--root=$rt/ondemand-oci", '--cgroup-manager=disabled', 'run',
        "--bundle=$bundle", "ondemand-$esc" ], 'oci: the bundle and the container id carry %i byte for byte');
    systemctl('stop', $unit);
    systemctl('reset-failed', $unit);
}
for my $f (qw(pwned pwned2 pwned3 pwned4)) {
    ok(!-e "$dir/$f" && !-e "/$f" && !-e "$rt/$f" && !-e "$ENV{HOME}/$f", "nothing ran: no file $f");
}

done_testing();
