#!/usr/bin/perl
# What ships with the programs (issue #15): one version (debian/changelog's, printed by
# ondemand-helperd --version and ondemandctl --version), the man pages (render without warnings,
# name every option and command the programs have), the bash completion (offers ondemandctl's
# commands, their options, and the app names), the LICENSE and debian/copyright. The packages
# themselves: scripts/test-deb (make test-deb).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Ondemand::Test;

my $root = repo_root();
my $helperd = "$root/build/bin/ondemand-helperd";
my $ctl = "$root/build/bin/ondemandctl";
plan skip_all => 'helperd and ondemandctl are not built' unless -x $helperd && -x $ctl;

sub slurp {
    open(my $fh, '<', $_[0]) or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

# -- one version
my ($version) = slurp("$root/debian/changelog") =~ /\Aondemand \(([^)]+)\) /;
ok(defined $version, "debian/changelog's version: " . ($version // '?'));
my ($out) = run_cmd($helperd, '--version');
is($out, "ondemand-helperd $version\n", 'helperd --version');
($out) = run_cmd($ctl, '--version');
is($out, "ondemandctl $version\n", 'ondemandctl --version');
($out) = run_cmd('make', '-s', '-C', $root, 'version');
is($out, "$version\n", 'make version');

# -- man pages: every long option of --help, and every command, is documented
my %page = ("$root/docs/man/ondemand-helperd.8" => $helperd, "$root/docs/man/ondemandctl.1" => $ctl);
for my $man (sort keys %page) {
    my $roff = slurp($man);
    (my $text = $roff) =~ s/\\-/-/g;
    my ($help) = run_cmd($page{$man}, '--help');
    my %opts = map { $_ => 1 } $help =~ /(--[a-z][a-z-]+)/g;
    my @undocumented = grep { $text !~ /\Q$_\E\b/ } sort keys %opts;
    is("@undocumented", '', "$man: every option of --help") or diag($help);
    SKIP: {
        skip 'man is not installed (man-db)', 1 unless -x '/usr/bin/man';
        my ($warn) = run_cmd('sh', '-c', "MANWIDTH=80 man --warnings -l '$man' 2>&1 >/dev/null");
        is($warn, '', "$man renders without warnings");
    }
}
my ($help) = run_cmd($ctl, '--help');
my ($sub_block) = $help =~ /^Subcommands:\n(.*?)(?:\n\n|\z)/ms;
my @commands = ($sub_block // '') =~ /^\s+(\S+)/mg;
ok(@commands >= 6, "ondemandctl --help lists its commands: @commands");
my $ctl_man = slurp("$root/docs/man/ondemandctl.1") =~ s/\\-/-/gr;
is(join(' ', grep { $ctl_man !~ /^\.B[IR]? \Q$_\E\b/m } @commands), '',
    'ondemandctl.1 documents every command');

# -- bash completion
my $completion = "$root/scripts/bash-completion/ondemandctl";
my $apps = testdir() . '/apps';
make_path($apps);
for my $a (qw(blog wiki)) { open(my $fh, '>', "$apps/$a.conf") or die; close $fh; }
sub complete {
    my ($line) = @_; # the words before the cursor; the last one is being completed
    my ($o, $st) = run_cmd('bash', '-c', 'set -u; source "$1"; shift; COMP_WORDS=("$@"); '
        . 'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _ondemandctl; echo "${COMPREPLY[*]}"',
        '_', $completion, split(/ /, $line, -1));
    is($st, 0, "completion of '$line' runs") or diag($o);
    chomp $o;
    return $o;
}
is(complete('ondemandctl '), join(' ', @commands), 'the commands, as --help lists them');
is(complete('ondemandctl st'), 'status start stop', 'a command prefix');
like(complete('ondemandctl --'), qr/^--socket --key-file --apps-dir --socket-dir --bus /,
    'the global options');
is(complete("ondemandctl --apps-dir $apps start "), 'blog wiki', 'start: the app names');
is(complete("ondemandctl status --apps-dir $apps w"), 'wiki', 'status: an app name prefix');
is(complete('ondemandctl check --nginx'), '--nginx --nginx-module', "check's options");
is(complete('ondemandctl --bus '), 'system user', '--bus values');

# -- license
like(slurp("$root/LICENSE"), qr/Apache License\s+Version 2\.0/, 'LICENSE: Apache-2.0');
like(slurp("$root/debian/copyright"), qr/^License: Apache-2\.0$/m, 'debian/copyright says so');

done_testing();
