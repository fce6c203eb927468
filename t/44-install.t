#!/usr/bin/perl
# `make install` / `make uninstall` (scripts/install.sh) into a DESTDIR: every file in place,
# unit paths rewritten for PREFIX, the module loads into Debian's nginx, the installed
# ondemandctl runs, and uninstall removes every file it installed (and keeps /etc/ondemand).
# The system user `ondemand` the helperd unit runs as: created in DESTDIR/etc/passwd when the
# DESTDIR has one (useradd --root), once; skipped with a message when it has none. The polkit
# rule and helperd's default config (never overwritten) are installed.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Find;
use File::Path qw(make_path);
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

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return undef;
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $text) = @_;
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $text;
    close $fh or die "$file: $!";
}

# The first DESTDIR holds a minimal etc/passwd (a staged root): the user is created there.
my @user_db = qw(passwd group shadow gshadow);
sub stage_user_db {
    make_path("$dest/etc");
    spew("$dest/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    spew("$dest/etc/group",  "root:x:0:\nwww-data:x:33:\n");
    spew("$dest/etc/$_", '') for qw(shadow gshadow);
    chmod 0640, "$dest/etc/shadow", "$dest/etc/gshadow";
}

for my $prefix ('/usr', '/opt/ondemand') {
    local $ENV{DESTDIR} = $dest;
    local $ENV{PREFIX}  = $prefix;
    my $with_passwd = $prefix eq '/usr';
    stage_user_db() if $with_passwd;
    my ($out, $st) = run_cmd($script, 'install');
    is($st, 0, "PREFIX=$prefix: install") or diag($out);
    my $install_out = $out;
    if ($with_passwd) {
        like($out, qr/created the system user ondemand/, 'the system user is created');
        my $passwd = slurp("$dest/etc/passwd");
        like($passwd, qr{^ondemand:x:(\d+):(\d+):[^:]*:/nonexistent:/usr/sbin/nologin$}m,
            'ondemand: no home, no login shell');
        my ($uid) = $passwd =~ /^ondemand:x:(\d+):/m;
        ok(defined $uid && $uid > 0 && $uid < 1000, "ondemand is a system user (uid $uid)");
        like(slurp("$dest/etc/group"), qr/^ondemand:x:\d+:$/m, 'with its own group');
        ($out, $st) = run_cmd($script, 'install');
        is($st, 0, 'a second install works') or diag($out);
        like($out, qr/system user ondemand exists/, 'and leaves the existing user alone');
        my @entries = slurp("$dest/etc/passwd") =~ /^ondemand:/mg;
        is(scalar @entries, 1, 'the user is not created twice');
    } else {
        like($out, qr/not creating the system user ondemand under DESTDIR/,
            'no etc/passwd in the DESTDIR: the user is left to the package (and said so)');
    }
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
    like($unit, qr{^ExecStart=\S+ --system --config /etc/ondemand/helperd\.toml --key-file=\$\{CREDENTIALS_DIRECTORY\}/helperd\.key$}m,
        'it reads /etc/ondemand/helperd.toml and the key credential');
    like($unit, qr{^LoadCredential=helperd\.key:/etc/ondemand/helperd\.key$}m,
        'the key credential is /etc/ondemand/helperd.key');
    like($out, qr{not generating /etc/ondemand/helperd\.key under DESTDIR}, 'no key made under DESTDIR');
    ok(!-e "$dest/etc/ondemand/helperd.key", 'and none is there');
    like($unit, qr/^User=ondemand$/m, 'it runs as the system user ondemand');
    ok(-f "$dest/etc/ondemand/helperd.toml", 'the default helperd.toml is installed');
    like(slurp("$dest/etc/ondemand/helperd.toml") // '', qr{^apps_dir = "/etc/ondemand/apps"$}m,
        'it serves the apps of /etc/ondemand/apps (the app registry)');
    ($out, $st) = run_cmd("$dest$prefix/sbin/ondemand-helperd", '--config',
        "$dest/etc/ondemand/helperd.toml", '--check-config');
    is($st, 0, 'the installed helperd accepts the installed helperd.toml') or diag($out);
    ok(-f "$dest$prefix/share/ondemand/ondemand-helperd.service.d/root.conf",
        'the opt-in root drop-in is installed');
    ok(-e "$unitdir/ondemand-podman\@.service", 'the app templates are installed');
    my $polkit = $prefix eq '/usr' ? '/usr/share/polkit-1/rules.d' : '/etc/polkit-1/rules.d';
    ok(-f "$dest$polkit/50-ondemand.rules", "polkit rule in $polkit");
    my $rule = slurp("$dest$polkit/50-ondemand.rules") // '';
    like($rule, qr/verb == "start" \|\| verb == "stop"\)/, 'the rule allows start and stop');
    unlike($rule, qr/"restart"/, 'and not restart');
    is(readlink("$dest/etc/nginx/modules-enabled/50-mod-http-ondemand.conf"),
        '/usr/share/nginx/modules-available/mod-http-ondemand.conf', 'module enabled, Debian style');
    ok(-d "$dest/etc/ondemand/apps", '/etc/ondemand/apps exists');
    # the app files are root-equivalent and may hold secrets (issue #15): only root and helperd's
    # group may read them, and new files get that group (setgid)
    my @ad = stat "$dest/etc/ondemand/apps";
    is(sprintf('%04o', $ad[2] & 07777), '2750', '/etc/ondemand/apps is 2750');
    is($ad[4], 0, '/etc/ondemand/apps belongs to root');
    if ($with_passwd) {
        my ($gid) = slurp("$dest/etc/group") =~ /^ondemand:x:(\d+):/m;
        is($ad[5], $gid, "/etc/ondemand/apps: group ondemand (helperd reads the app files)");
    } else {
        like($install_out, qr{no group ondemand: /etc/ondemand/apps stays root's},
            'no group ondemand: said so');
    }
    is(slurp("$dest$prefix/lib/tmpfiles.d/ondemand.conf") =~ m{^d /run/ondemand/apps 0750 root www-data -$}m
        ? 1 : 0, 1, 'tmpfiles.d: /run/ondemand/apps 0750 root:www-data (the apps\' sockets)');
    like(slurp("$unitdir/ondemand-exec\@.service") // '', qr/^Slice=ondemand-apps\.slice$/m,
        'the app templates run in ondemand-apps.slice');
    ok(-f "$unitdir/ondemand-apps.slice", 'and the slice is installed');
    spew("$dest/etc/ondemand/apps/loose.conf", "EXEC=/bin/true\n");
    chmod 0644, "$dest/etc/ondemand/apps/loose.conf";
    ($out, $st) = run_cmd($script, 'install');
    like($out, qr{warning: app files others may read or their group may write: /etc/ondemand/apps/loose\.conf},
        'install names an app file others may read');
    is(sprintf('%04o', (stat "$dest/etc/ondemand/apps/loose.conf")[2] & 07777), '0644',
        'and leaves its mode alone');
    unlink "$dest/etc/ondemand/apps/loose.conf";

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

    # an operator's helperd.toml survives a reinstall
    spew("$dest/etc/ondemand/helperd.toml", "log_level = \"debug\"\n");
    ($out, $st) = run_cmd($script, 'install');
    is($st, 0, 'reinstall') or diag($out);
    is(slurp("$dest/etc/ondemand/helperd.toml"), "log_level = \"debug\"\n",
        "a reinstall keeps the operator's helperd.toml");

    # an operator's app file and helperd.toml survive uninstall
    spew("$dest/etc/ondemand/apps/mine.conf", "IMAGE=x\n");
    ($out, $st) = run_cmd($script, 'uninstall');
    is($st, 0, "PREFIX=$prefix: uninstall") or diag($out);
    my $db = join '|', @user_db;
    # (the staged user database and useradd's lock file are the DESTDIR's, not installed files)
    my @left = grep { !m{/etc/ondemand/} && !m{/etc/(?:(?:$db)-?|\.pwd\.lock)$} } files_under($dest);
    is("@left", '', 'uninstall removes every installed file');
    ok(-f "$dest/etc/ondemand/apps/mine.conf", 'and keeps the app files');
    ok(-f "$dest/etc/ondemand/helperd.toml", "and helperd.toml");
    unlink "$dest/etc/ondemand/apps/mine.conf", "$dest/etc/ondemand/helperd.toml";
    unlink "$dest/etc/.pwd.lock", map { ("$dest/etc/$_", "$dest/etc/$_-") } @user_db;
}

done_testing();
