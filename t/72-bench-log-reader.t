#!/usr/bin/perl
# bench/run exited 141 when it ran in the background: a bench run writes its progress (blog) to
# stderr for minutes, and when whoever read that stderr through a pipe went away, the next line
# killed bash with SIGPIPE, without its EXIT trap (sandbox, helperd and nginx left running).
# bench/lib.sh's log_to puts `tee -p` between the run and its stderr. Here: a bash that sources
# bench/lib.sh writes a blog line after the reader of its stderr has exited; without log_to it
# dies with 141 (the cause), with it, it carries on and the line is in the log file.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;

my $dir = testdir();
my $lib = repo_root() . '/bench/lib.sh';

# Runs SCRIPT (after sourcing bench/lib.sh) with stderr on a pipe whose reader has gone by the
# time SCRIPT writes (the reader closes its end, then makes a file that SCRIPT waits for);
# returns bash's exit status and whether it got past the write.
sub with_gone_reader {
    my ($name, $script) = @_;
    my ($rc, $done, $gone) = ("$dir/$name.rc", "$dir/$name.done", "$dir/$name.gone");
    my $inner = "set -euo pipefail; . '$lib'; $script; until [ -e '$gone' ]; do sleep 0.01; done; "
        . "blog 'after the reader left'; : > '$done'";
    my $outer = "{ bash -c \"\$1\"; echo \$? > '$rc'; } 2>&1 | sh -c 'exec 0<&-; : > \"\$1\"' reader '$gone'";
    system('bash', '-c', $outer, 'outer', $inner) == 0 or die "bash: $?";
    open(my $fh, '<', $rc) or die "$rc: $!";
    chomp(my $status = <$fh> // '');
    return ($status, -e $done);
}

my ($status, $done) = with_gone_reader('plain', 'true');
is($status, 141, 'without log_to: the blog line after the reader left kills bash with SIGPIPE (141)');
ok(!$done, 'without log_to: nothing after that line runs');

($status, $done) = with_gone_reader('logged', "log_to '$dir/run.log'");
is($status, 0, 'with log_to: bash carries on and exits 0');
ok($done, 'with log_to: the commands after the line run');
ok(wait_for(sub { my $t = do { local (@ARGV, $/) = ("$dir/run.log"); <> } // ''; $t =~ /after the reader left/ },
    timeout => 5, what => 'the log line'), 'with log_to: the line is in the log file');

done_testing();
