#!/usr/bin/perl
# The nginx includes that `ondemandctl gen-nginx` makes from the app-file fuzzer's seed corpus
# (tests/fuzz/corpus-app_file/: first line the file name, the rest its text) all pass `nginx -t`
# with the module loaded. tests/fuzz/fuzz_app_file.cpp checks the include's tokens for every
# input it accepts; this checks that real nginx agrees, on the seeds (too slow for the fuzzer).
# FUZZ_CORPUS=DIR adds the inputs of a fuzzing run (e.g. build/fuzz-corpus/app_file).
# Files that ondemandctl rejects must be rejected with a diagnostic and write nothing.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path remove_tree);
use Ondemand::Test;
use Ondemand::Stack;

my $ctl    = repo_root() . '/build/bin/ondemandctl';
my @dirs   = (repo_root() . '/tests/fuzz/corpus-app_file');
push @dirs, $ENV{FUZZ_CORPUS} if $ENV{FUZZ_CORPUS};
my @inputs = map { glob("$_/*") } @dirs;
ok(@inputs >= 5, scalar(@inputs) . ' corpus inputs');

my $work = testdir() . '/gen';
my ($accepted, $rejected) = (0, 0);
for my $input (@inputs) {
    open(my $fh, '<:raw', $input) or die "$input: $!";
    my $data = do { local $/; <$fh> };
    close $fh;
    my ($file, $text) = $data =~ /\A([^\n]{1,100})\n(.*)\z/s or next;
    next if $file =~ m{/} || $file eq '.' || $file eq '..' || $file =~ /\0/;
    remove_tree($work);
    make_path("$work/apps", "$work/nginx");
    open($fh, '>:raw', "$work/apps/$file") or next;
    print $fh $text;
    close $fh;
    my $include = "$work/nginx/apps.conf";
    my ($out, $st) = run_cmd($ctl, '--apps-dir', "$work/apps", '--socket-dir', "$work/run",
        'gen-nginx', '-o', $include);
    if ($st != 0) {
        $rejected++;
        ok(!-e $include, "$input: rejected, nothing written") or diag($out);
        next;
    }
    $accepted++;
    write_nginx_conf("$work/nginx", workers => 1, zone => 'od:1m', helper => "unix:$work/h.sock",
        http => "    include $include;\n    server { listen 127.0.0.1:1; "
              . "location / { ondemand_app \$app; proxy_pass http://\$app; } }\n");
    ($out, $st) = run_cmd('/usr/sbin/nginx', '-t', '-q', '-p', "$work/nginx", '-c',
        "$work/nginx/nginx.conf");
    is($st, 0, "$input: nginx -t accepts the generated include") or do {
        diag($out);
        if (open(my $inc, "<", $include)) { diag(do { local $/; <$inc> }) }
    };
}
ok($accepted >= 5, "$accepted inputs gave an include ($rejected rejected)");

done_testing();
