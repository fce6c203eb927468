#!/usr/bin/perl
# `make install` / `make uninstall` (scripts/install.sh) into a DESTDIR: every file in place,
# unit paths rewritten for PREFIX, the module loads into Debian's nginx, the installed
# ondemandctl runs, and uninstall removes every file it installed (and keeps /etc/ondemand).

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Find;
use Ondemand::Test;

my $script = repo_root() . '/scripts/install.sh';
my $dest = testdir() . '/root';

sub files_under {
    my ($dir) = @_;
    my @f;
    find({ wanted => sub { push @f, $File::Find::name if -f $_ || -l $_ }, no_chdir => 1 }, $dir)
      if -d $dir;
    return sort @f;
}

for my $prefix ('/usr', '/opt/ondemand') {
    local $ENV{DESTDIR} = $dest;
    local $ENV{PREFIX}  = $prefix;
    my ($out, $st) = run_cmd($script, 'install');
    is($st, 0, "PREFIX=$prefix: install") or diag($out);
    my ($list) = run_cmd($script, 'list');
    my @want = split /\n/, $list;
    my @missing = grep { !-e "$dest$_" && !-l "$dest$_" } @want;
    is("@missing", '', "PREFIX=$prefix: every file of the manifest is installed");
    ok(-x "$dest$prefix/sbin/ondemand-helperd", 'helperd in sbin');
    ok(-x "$dest$prefix/bin/ondemandctl", 'ondemandctl in bin');
    my $unitdir = "$dest$prefix/lib/systemd/system";
    open(my $fh, '<', "$unitdir/ondemand-helperd.service") or die $!;
    my $unit = do { local $/; <$fh> };
    like($unit, qr{^ExecStart=\Q$prefix\E/sbin/ondemand-helperd --system}m,
        'the helperd unit runs the installed binary');
    unlike($unit, qr{/usr/local/}, 'no /usr/local path left in the unit') if $prefix ne '/usr/local';
    ok(-e "$unitdir/ondemand-podman\@.service", 'the app templates are installed');
    my $polkit = $prefix eq '/usr' ? '/usr/share/polkit-1/rules.d' : '/etc/polkit-1/rules.d';
    ok(-f "$dest$polkit/50-ondemand.rules", "polkit rule in $polkit");
    is(readlink("$dest/etc/nginx/modules-enabled/50-mod-http-ondemand.conf"),
        '/usr/share/nginx/modules-available/mod-http-ondemand.conf', 'module enabled, Debian style');
    ok(-d "$dest/etc/ondemand/apps", '/etc/ondemand/apps exists');

    ($out, $st) = run_cmd("$dest$prefix/bin/ondemandctl", '--apps-dir', "$dest/etc/ondemand/apps",
        'check');
    is($st, 0, 'the installed ondemandctl runs') or diag($out);

    # the installed module loads into Debian's nginx
    my $ngx = testdir() . '/nginx';
    mkdir $ngx;
    open($fh, '>', "$ngx/nginx.conf") or die;
    print $fh "load_module $dest/usr/lib/nginx/modules/ngx_http_ondemand_module.so;\n"
      . "error_log $ngx/error.log; pid $ngx/nginx.pid;\nevents {}\n"
      . "http { ondemand_zone od:1m; ondemand_helper unix:$ngx/h.sock; }\n";
    close $fh;
    ($out, $st) = run_cmd('/usr/sbin/nginx', '-t', '-q', '-p', $ngx, '-c', "$ngx/nginx.conf");
    is($st, 0, 'nginx -t accepts the installed module') or diag($out);

    # an operator's app file survives uninstall
    open($fh, '>', "$dest/etc/ondemand/apps/mine.conf") or die;
    print $fh "IMAGE=x\n";
    close $fh;
    ($out, $st) = run_cmd($script, 'uninstall');
    is($st, 0, "PREFIX=$prefix: uninstall") or diag($out);
    my @left = grep { !m{/etc/ondemand/} } files_under($dest);
    is("@left", '', 'uninstall removes every installed file');
    ok(-f "$dest/etc/ondemand/apps/mine.conf", 'and keeps the app files');
    unlink "$dest/etc/ondemand/apps/mine.conf";
}

done_testing();
