#!/usr/bin/perl
# Issue #12: a key shared by nginx and helperd. nginx (`ondemand_helper unix:... key=FILE`) and
# helperd (`--key-file FILE`) with the same key: a cold start works through nginx; another
# process of the same uid that connects to helperd's socket cannot START or STOP (no HELLO, no
# key, a wrong key), and even with the right key cannot take nginx's instance name; `nginx -t`
# refuses a missing, empty, short or spaced key file naming it; ondemandctl authenticates with
# the key file and says clearly when it cannot read it; a key changed on both sides (helperd
# SIGHUP, then nginx reload) keeps working.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::UNIX;
use IO::Select;
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Faults;

sub write_key {
    my ($path, $key) = @_;
    open(my $fh, '>', "$path.tmp") or die "$path: $!";
    print $fh $key;
    close $fh;
    chmod 0600, "$path.tmp";
    rename "$path.tmp", $path or die "rename $path: $!";
}

# Connects to helperd, sends @lines, returns what came back until helperd closed the
# connection (or '<open>' appended when it stays open for 3 s).
sub raw_session {
    my (@lines) = @_;
    my $s = IO::Socket::UNIX->new(Peer => helperd_socket(), Type => SOCK_STREAM)
        or die "connect: $!";
    print $s map { "$_\n" } @lines;
    my ($out, $sel) = ('', IO::Select->new($s));
    while (1) {
        return "$out<open>" unless $sel->can_read(3);
        my $n = sysread($s, my $buf, 4096);
        return $out unless $n;
        $out .= $buf;
    }
}

sandbox_up();
install_app('blog');
install_app('shop');
install_app('late');

my $key_file = testdir() . '/helperd.key';
write_key($key_file, "0123456789abcdef" x 4 . "\n");
start_helperd(args => ['--key-file', $key_file]);

my %conf = (
    helper => 'unix:' . helperd_socket() . " key=$key_file",
    http   => <<"EOF2");
    upstream blog { server unix:${\ app_socket('blog')}; ondemand unit=${\ app_unit('blog')}; }
    upstream shop { server unix:${\ app_socket('shop')}; ondemand unit=${\ app_unit('shop')}; }
    upstream late { server unix:${\ app_socket('late')}; ondemand unit=${\ app_unit('late')}; }
    server {
        listen 127.0.0.1:${\ nginx_port()};
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
    }
EOF2
start_nginx(%conf);

# -- nginx authenticates: a cold start through nginx
my $r = http_get(nginx_port(), '/', headers => { 'X-App' => 'blog' }, timeout => 30);
is($r->{status}, 200, 'cold start through nginx with key=FILE: 200');
is(helperd_start_units(app_unit('blog')), 1, 'one StartUnit');
ok(wait_log_line(helperd_log(), qr/client \d+ belongs to instance nginx-\S+ \(key checked\)/,
    timeout => 5), "helperd checked nginx's key");
my ($instance) = do {
    open(my $fh, '<', helperd_log()) or die;
    map { /belongs to instance (\S+)/ ? ($1) : () } <$fh>;
};
ok($instance, "nginx's instance name: " . ($instance // '?'));
is(count_log_lines(helperd_log(), qr/refused and closed/), 0, 'no refusal for nginx');

# -- another process with nginx's uid (this test, root like nginx's master) cannot START/STOP
my $start_shop = 'START shop 1 ' . app_unit('shop') . ' connect 5000 ' . app_socket('shop');
my $stop_blog  = 'STOP blog 1 ' . app_unit('blog') . ' force';
is(raw_session($start_shop), "ERROR authentication required\n", 'START without HELLO: refused, closed');
is(raw_session($stop_blog), "ERROR authentication required\n", 'STOP without HELLO: refused, closed');
is(raw_session("HELLO $instance", $stop_blog), "ERROR authentication required\n",
    "HELLO with nginx's instance name but no key: refused, closed");
is(raw_session('HELLO php-fpm key=' . ('f' x 64), $start_shop), "ERROR wrong key\n",
    'a wrong key: refused, closed');
is(unit_active(app_unit('shop')), 'inactive', 'shop was not started');
is(unit_active(app_unit('blog')), 'active', 'blog was not stopped');
is(helperd_start_units(app_unit('shop')), 0, 'no StartUnit for shop');
ok(wait_log_line(helperd_log(), qr/client \d+ \(pid $$ uid 0\): refused and closed: wrong key/,
    timeout => 5), "helperd logs the refusal with the peer's pid and uid");

# -- with the right key, another process still cannot take nginx's instance name
my $key = "0123456789abcdef" x 4;
is(raw_session("HELLO $instance key=$key", $stop_blog),
    "ERROR instance name $instance is in use by another process\n",
    "the right key but nginx's instance name from another process: refused");
is(unit_active(app_unit('blog')), 'active', 'blog still runs');
is(raw_session("HELLO tool-1 key=$key", 'STATUS') =~ /^APP blog ready/m ? 1 : 0, 1,
    'the right key under its own name: served (STATUS)');

# -- ondemandctl reads the key file and authenticates; it says so when it cannot
my $ctl = repo_root() . '/build/bin/ondemandctl';
my $apps = testdir() . '/no-apps';
mkdir $apps;
my @ctl = ($ctl, '--socket', helperd_socket(), '--apps-dir', $apps);
my ($out, $status) = run_cmd(@ctl, '--key-file', $key_file, 'status');
is($status, 0, 'ondemandctl --key-file status: exit 0') or diag($out);
like($out, qr/^blog\s+ready/m, 'ondemandctl status lists blog as ready');
{
    local $ENV{ONDEMAND_KEY_FILE} = testdir() . '/absent.key';
    ($out, $status) = run_cmd(@ctl, 'status');
}
isnt($status, 0, 'ondemandctl without a readable key: fails');
like($out, qr/helperd: authentication required; ondemandctl cannot use the key: cannot open \S*absent\.key: No such file/,
    'ondemandctl says the key is required and why it has none') or diag($out);
($out, $status) = run_cmd(@ctl, '--key-file', testdir() . '/absent.key', 'status');
like($out, qr/cannot open \S*absent\.key/, 'ondemandctl --key-file of a missing file: says so')
    or diag($out);

# -- nginx -t refuses a bad key file, naming it
my $tdir = testdir() . '/nginx-t';
mkdir $tdir;
my %bad = (
    missing => [undef, qr/cannot open key file "\Q$tdir\E\/missing\.key" \(2: No such file/],
    empty   => ["\n", qr/key file "\Q$tdir\E\/empty\.key" is empty/],
    short   => ["abc\n", qr/key file "\Q$tdir\E\/short\.key" holds a key shorter than 16 bytes/],
    spaced  => ["0123456789 abcdef0123\n", qr/key file "\Q$tdir\E\/spaced\.key" holds a space/],
    big     => ['a' x 1000, qr/key file "\Q$tdir\E\/big\.key" holds a key longer than 256 bytes/],
);
for my $name (sort keys %bad) {
    my ($contents, $re) = @{ $bad{$name} };
    write_key("$tdir/$name.key", $contents) if defined $contents;
    write_nginx_conf($tdir, file => "$name.conf", workers => 1,
        helper => 'unix:' . helperd_socket() . " key=$tdir/$name.key", http => '');
    my ($ok, $msg) = nginx_t("$tdir/$name.conf");
    ok(!$ok, "nginx -t refuses a $name key file");
    like($msg, $re, "... and names the file and the problem ($name)") or diag($msg);
}
write_nginx_conf($tdir, file => 'good.conf', workers => 1,
    helper => 'unix:' . helperd_socket() . " key=$key_file", http => '');
my ($ok, $msg) = nginx_t("$tdir/good.conf");
ok($ok, 'control: nginx -t passes with a good key file') or diag($msg);
write_nginx_conf($tdir, file => 'param.conf', workers => 1,
    helper => 'unix:' . helperd_socket() . " secret=$key_file", http => '');
($ok, $msg) = nginx_t("$tdir/param.conf");
ok(!$ok, 'nginx -t refuses an unknown ondemand_helper parameter');
like($msg, qr/invalid parameter "secret=.*key=FILE expected/, '... naming it') or diag($msg);

# -- the key changes on both sides: helperd first (SIGHUP), then nginx (reload)
my $from = log_size(helperd_log());
write_key($key_file, "fedcba9876543210" x 4 . "\n");
kill 'HUP', daemon_pid('helperd');
ok(wait_log_line(helperd_log(), qr/reloaded: .*key of \Q$key_file\E/, from => $from, timeout => 5),
    'helperd re-read the key on SIGHUP');
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'shop' }, timeout => 30);
is($r->{status}, 200, "between the two: nginx's authenticated connections keep working");
reload_nginx(%conf);
$r = http_get(nginx_port(), '/', headers => { 'X-App' => 'late' }, timeout => 30);
is($r->{status}, 200, 'after nginx reload with the new key: a cold start works');
is(helperd_start_units(app_unit('late')), 1, 'one StartUnit for it');
is(count_log_lines(helperd_log(), qr/refused and closed: (wrong key|authentication|instance)/,
    from => $from), 0, "no refusal of nginx's connections across the key change");
is(raw_session("HELLO tool-2 key=$key", 'STATUS'), "ERROR wrong key\n", 'the old key is refused');

# -- the keys are never logged (helperd runs with --log-level debug here)
my $helperd_log = do { local (@ARGV, $/) = (helperd_log()); <> };
unlike($helperd_log, qr/0123456789abcdef0123456789abcdef|fedcba9876543210fedcba9876543210/,
    "helperd's debug log holds neither key");
like($helperd_log, qr/HELLO nginx-\S+ key=\(hidden\)/, "it logs nginx's HELLO with the key hidden");

done_testing();
