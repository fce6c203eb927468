package Ondemand::Test;

# A small end-to-end test harness for ondemand, in the spirit of nginx's own test suite
# (Test::Nginx is not packaged in Debian). Test::More based; see the POD at the end.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EINTR EAGAIN EWOULDBLOCK EINPROGRESS);
use Exporter qw(import);
use File::Basename qw(basename dirname);
use File::Find ();
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG setsid);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
  repo_root testdir run_cmd
  sandbox_up sandbox_down
  install_unit systemctl unit_active
  testapp_bin testapp_unit sockdir app_socket
  start_daemon stop_daemon daemon_pid
  wait_for wait_log_line count_log_lines log_size
  http_get http_request http_get_unix http_request_unix http_get_many
  unix_connects tcp_connects free_port
);

# The only global state: this process's temp dir, its sandboxes and its daemons.
my $OWNER_PID = $$;    # forked children must not tear anything down
my $ROOT      = abs_path(dirname(__FILE__) . '/../../..');
my $TESTDIR;
my @SANDBOXES;         # base dirs, in start order
my @DAEMONS;           # { name, pid, log, stop_signal, exited, status }, in start order

# Let END run (and clean up) when the test is interrupted.
$SIG{INT}  = sub { exit 130 };
$SIG{TERM} = sub { exit 143 };

sub repo_root { $ROOT }

sub testdir {
    return $TESTDIR if defined $TESTDIR;
    # Short paths: unix socket paths are limited to 107 bytes.
    my $base = -d '/tmp' ? '/tmp' : File::Spec->tmpdir;
    $TESTDIR = tempdir('ondemand-t-XXXXXX', DIR => $base, CLEANUP => 0);
    return $TESTDIR;
}

# ---------------------------------------------------------------------------------- processes

# Runs a command (list form, no shell); returns (stdout+stderr, exit status as in $?).
sub run_cmd {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($out, $?);
}

sub _sandbox_script { "$ROOT/scripts/sandbox" }

sub sandbox_up {
    my (%opts) = @_;
    my $name     = $opts{name} // 'sandbox';
    my $activate = $opts{activate} // ($name eq 'sandbox');
    my $base     = testdir() . "/$name";

    push @SANDBOXES, $base;
    my ($out, $status) = do {
        local $ENV{ONDEMAND_SANDBOX} = $base;
        run_cmd(_sandbox_script(), 'up');
    };
    croak "scripts/sandbox up failed (exit " . ($status >> 8) . "):\n$out" if $status;

    my %env;
    for my $line (split /\n/, $out) {
        next unless $line =~ /^export (\w+)=(.*)$/;
        my ($k, $v) = ($1, $2);
        $v =~ s/\\(.)/$1/g;    # undo bash's printf %q (paths here need no more)
        $env{$k} = $v;
    }
    croak "scripts/sandbox up printed no environment:\n$out" unless $env{XDG_RUNTIME_DIR};
    @ENV{ keys %env } = values %env if $activate;
    return \%env;
}

sub sandbox_down {
    my ($base) = @_;
    $base //= $ENV{ONDEMAND_SANDBOX} // croak 'sandbox_down: no sandbox';
    local $ENV{ONDEMAND_SANDBOX} = $base;
    my ($out, $status) = run_cmd(_sandbox_script(), 'down');
    Test::More::diag("scripts/sandbox down ($base):\n$out") if $status || $out =~ /\S/;
    @SANDBOXES = grep { $_ ne $base } @SANDBOXES;
    return !$status;
}

sub systemctl {
    my (@args) = @_;
    my ($out, $status) = run_cmd('systemctl', '--user', @args);
    return wantarray ? ($out, $status) : $out;
}

sub install_unit {
    my ($name, $text) = @_;
    my $dir = $ENV{ONDEMAND_SANDBOX_UNITS} // croak 'install_unit: no sandbox (call sandbox_up)';
    open(my $fh, '>', "$dir/$name") or croak "$dir/$name: $!";
    print $fh $text;
    close $fh or croak "$dir/$name: $!";
    my ($out, $status) = systemctl('daemon-reload');
    croak "systemctl --user daemon-reload failed: $out" if $status;
    return "$dir/$name";
}

sub unit_active {
    my ($unit) = @_;
    my $state = systemctl('show', '--property=ActiveState', '--value', $unit);
    $state =~ s/\s+\z//;
    return $state;
}

# ------------------------------------------------------------------------------------ testapp

sub testapp_bin {
    my $bin = $ENV{ONDEMAND_TESTAPP} // "$ROOT/build/bin/ondemand-testapp";
    croak "$bin is not built (build the project first, e.g. make)" unless -x $bin;
    return $bin;
}

sub sockdir { testdir() . "/apps/$_[0]" }
sub app_socket { sockdir($_[0]) . '/app.sock' }

sub testapp_unit {
    my ($app, %opts) = @_;
    croak "bad app name '$app'" unless $app =~ /^[A-Za-z0-9_.-]+$/;
    make_path(sockdir($app));
    my @args = ('--socket', app_socket($app), '--name', $app);
    push @args, '--delay-ms', $opts{delay_ms} if defined $opts{delay_ms};
    push @args, '--backlog',  $opts{backlog}  if defined $opts{backlog};
    push @args, '--never-listen' if $opts{never_listen};
    push @args, '--exit-before-listen=' . ($opts{exit_before_listen} =~ /^\d+$/
        ? $opts{exit_before_listen} : 3) if $opts{exit_before_listen};
    push @args, '--notify'       if $opts{notify};
    push @args, '--log-requests' if $opts{log_requests};
    push @args, '--alloc-mib', $opts{alloc_mib} if defined $opts{alloc_mib};
    my $type = $opts{notify} ? "Type=notify\nNotifyAccess=main" : 'Type=simple';
    my $extra = $opts{service} // '';
    $extra .= "\n" if length $extra && $extra !~ /\n\z/;
    return <<"EOF";
[Unit]
Description=ondemand test app $app

[Service]
$type
ExecStart=${\ testapp_bin()} @args
TimeoutStopSec=10
$extra
EOF
}

# ------------------------------------------------------------------------------------ daemons

sub _daemon { my ($name) = @_; (grep { $_->{name} eq $name } @DAEMONS)[-1] }

# True once the daemon has exited (reaps it; records its status).
sub _exited {
    my ($d) = @_;
    return 1 if $d->{exited};
    my $r = waitpid($d->{pid}, WNOHANG);
    if ($r == $d->{pid} || $r == -1) {
        $d->{exited} = 1;
        $d->{status} = $r == -1 ? undef : $?;
        return 1;
    }
    return 0;
}

sub _tail {
    my ($file, $n) = @_;
    open(my $fh, '<', $file) or return '';
    my @lines = <$fh>;
    return join '', @lines[ ($#lines - $n + 1 < 0 ? 0 : $#lines - $n + 1) .. $#lines ];
}

sub start_daemon {
    my (%o) = @_;
    my $name = $o{name} // croak 'start_daemon: name';
    my @cmd  = @{ $o{cmd} // croak 'start_daemon: cmd' };
    my $log  = $o{log} // testdir() . "/$name.log";
    my $timeout = $o{timeout} // 10;
    croak "start_daemon: daemon '$name' is already running"
      if grep { $_->{name} eq $name && !_exited($_) } @DAEMONS;

    my $ready = $o{ready};
    $ready //= sub { unix_connects($o{ready_unix}) } if defined $o{ready_unix};
    $ready //= sub { tcp_connects($o{ready_port}) } if defined $o{ready_port};
    if (defined $o{ready_log}) {
        my ($re, $from) = ($o{ready_log}, log_size($log));
        $ready //= sub { count_log_lines($log, $re, from => $from) };
    }

    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setsid();
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        @ENV{ keys %{ $o{env} } } = values %{ $o{env} } if $o{env};
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    my $d = { name => $name, pid => $pid, log => $log, stop_signal => $o{stop_signal} // 'TERM' };
    push @DAEMONS, $d;
    return $pid unless $ready;

    my $ok = wait_for(sub { _exited($d) || $ready->() }, timeout => $timeout);
    if (!$ok || $d->{exited}) {
        my $why = $d->{exited}
          ? 'exited' . (defined $d->{status} ? ' with status ' . ($d->{status} >> 8)
                . ($d->{status} & 127 ? ' (signal ' . ($d->{status} & 127) . ')' : '') : '')
          : "not ready within ${timeout}s";
        croak "daemon $name (@cmd) $why; last lines of $log:\n" . _tail($log, 20);
    }
    return $pid;
}

sub daemon_pid {
    my $d = _daemon($_[0]);
    return $d && !_exited($d) ? $d->{pid} : undef;
}

sub stop_daemon {
    my ($name, %o) = @_;
    my $d = _daemon($name) // croak "stop_daemon: no daemon '$name'";
    return $d->{status} if _exited($d);
    my $signal  = $o{signal} // $d->{stop_signal};
    my $timeout = $o{timeout} // 10;
    kill $signal, $d->{pid};
    unless (wait_for(sub { _exited($d) }, timeout => $timeout)) {
        Test::More::diag("daemon $name (pid $d->{pid}) ignored SIG$signal for ${timeout}s: SIGKILL");
        kill 'KILL', $d->{pid};
        wait_for(sub { _exited($d) }, timeout => 5);
    }
    return $d->{status};
}

# ---------------------------------------------------------------------------------- waiting

sub wait_for {
    my ($cond, %o) = @_;
    my $deadline = time + ($o{timeout} // 10);
    my $interval = $o{interval} // 0.015;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        last if time >= $deadline;
        sleep $interval;
    }
    Test::More::diag("timed out after " . ($o{timeout} // 10) . "s waiting for $o{what}")
      if defined $o{what};
    return 0;    # not an empty list: ok(wait_for(...), 'name') must fail, not test 'name'
}

sub log_size { -s $_[0] // 0 }

# Lines of $file (from byte offset `from`) matching $re.
sub _log_matches {
    my ($file, $re, $from) = @_;
    open(my $fh, '<', $file) or return;
    seek($fh, $from // 0, 0);
    return grep { /$re/ } <$fh>;
}

sub wait_log_line {
    my ($file, $re, %o) = @_;
    my $line;
    wait_for(sub { ($line) = _log_matches($file, $re, $o{from}); defined $line },
        timeout => $o{timeout} // 10, what => $o{what} // "a line matching $re in $file");
    chomp $line if defined $line;
    return $line;
}

sub count_log_lines {
    my ($file, $re, %o) = @_;
    return scalar(() = _log_matches($file, $re, $o{from}));
}

# ------------------------------------------------------------------------------------- sockets

sub unix_connects {
    my ($path) = @_;
    return 0 unless -S $path;
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or return 0;
    close $s;
    return 1;
}

sub tcp_connects {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
        Timeout => 1) or return 0;
    close $s;
    return 1;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
        Listen => 1, ReuseAddr => 0) or croak "free_port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# ----------------------------------------------------------------------------------------- HTTP

sub _connect {
    my ($where, $timeout) = @_;
    return $where =~ m{^/}
      ? IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $where)
      : IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $where, Proto => 'tcp',
            Timeout => $timeout);
}

sub _build_request {
    my ($path, %o) = @_;
    my $method = $o{method} // (defined $o{body} ? 'POST' : 'GET');
    my $req = "$method $path HTTP/1.1\r\nHost: " . ($o{host} // 'localhost') . "\r\n";
    my @headers = ref $o{headers} eq 'HASH' ? %{ $o{headers} } : @{ $o{headers} // [] };
    my %have;
    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
        $have{ lc $k } = 1;
    }
    $req .= "Connection: close\r\n" unless $have{connection};
    $req .= 'Content-Length: ' . length($o{body}) . "\r\n"
      if defined $o{body} && !$have{'content-length'} && !$have{'transfer-encoding'};
    return $req . "\r\n" . ($o{body} // '');
}

# Parses a complete response out of $buf; undef if more bytes are needed (and $eof is false).
sub _parse_response {
    my ($buf, $eof, $head_only) = @_;
    my $end = index($buf, "\r\n\r\n");
    return $eof ? { status => undef, error => 'incomplete response head', raw => $buf } : undef
      if $end < 0;
    my ($status_line, @lines) = split /\r\n/, substr($buf, 0, $end);
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d{3})}
      or return { status => undef, error => "bad status line: $status_line", raw => $buf };
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $h{ lc $k } = exists $h{ lc $k } ? "$h{lc $k}, $v" : $v;
    }
    my $rest = substr($buf, $end + 4);
    my $r = { status => $status, headers => \%h, raw => $buf };
    if ($head_only || $status == 204 || $status == 304 || $status < 200) {
        $r->{body} = '';
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $body = '';
        while (1) {
            $rest =~ /\A([0-9a-fA-F]+)[^\r\n]*\r\n/ or return $eof ? { %$r, error => 'truncated chunked body' } : undef;
            my $size = hex $1;
            my $need = length($&) + $size + 2;
            return $eof ? { %$r, error => 'truncated chunked body' } : undef
              if length($rest) < $need;
            $body .= substr($rest, length($&), $size);
            $rest = substr($rest, $need);
            last if $size == 0;
        }
        $r->{body} = $body;
    } elsif (defined $h{'content-length'}) {
        return $eof ? { %$r, body => $rest, error => 'truncated body' } : undef
          if length($rest) < $h{'content-length'};
        $r->{body} = substr($rest, 0, $h{'content-length'});
    } else {
        return undef unless $eof;    # body delimited by close
        $r->{body} = $rest;
    }
    return $r;
}

# Sends $raw on each socket of @conns and collects one response from each (IO::Select).
sub _exchange {
    my ($conns, $timeout, $head_only) = @_;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new;
    for my $c (@$conns) {
        next if $c->{result};
        $c->{start} = time;
        $c->{buf}   = '';
        my $off = 0;
        # requests are small: a blocking write is fine (and keeps this simple)
        while ($off < length $c->{raw}) {
            my $n = syswrite($c->{sock}, $c->{raw}, length($c->{raw}) - $off, $off);
            if (!defined $n) {
                next if $! == EINTR;
                $c->{result} = { status => undef, error => "write: $!" };
                last;
            }
            $off += $n;
        }
        $sel->add($c->{sock}) unless $c->{result};
    }
    my %by_fh = map { fileno($_->{sock}) => $_ } grep { !$_->{result} } @$conns;
    while ($sel->count) {
        my $left = $deadline - time;
        last if $left <= 0;
        for my $fh ($sel->can_read($left)) {
            my $c = $by_fh{ fileno $fh };
            my $n = sysread($fh, $c->{buf}, 65536, length $c->{buf});
            next if !defined $n && ($! == EINTR || $! == EAGAIN);
            my $eof = !$n;
            my $r = _parse_response($c->{buf}, $eof, $head_only);
            if (!$r && $eof) {
                $r = { status => undef, error => defined $n ? 'connection closed' : "read: $!",
                    raw => $c->{buf} };
            }
            next unless $r;
            $r->{elapsed} = time - $c->{start};
            $c->{result} = $r;
            $sel->remove($fh);
        }
    }
    for my $c (@$conns) {
        $c->{result} //= { status => undef, error => "timeout after ${timeout}s",
            raw => $c->{buf}, elapsed => time - $c->{start} };
        close $c->{sock} if $c->{sock};
    }
    return [ map { $_->{result} } @$conns ];
}

sub _request_many {
    my ($where, $raw, $n, %o) = @_;
    my $timeout = $o{timeout} // 10;
    my $head_only = $raw =~ /^HEAD /;
    my @conns;
    for (1 .. $n) {
        my $sock = _connect($where, $timeout);
        push @conns, $sock
          ? { sock => $sock, raw => $raw }
          : { raw => $raw, result => { status => undef, error => "connect: $!", elapsed => 0 } };
    }
    return _exchange(\@conns, $timeout, $head_only);
}

sub http_request      { _request_many($_[0], $_[1], 1, @_[ 2 .. $#_ ])->[0] }
sub http_request_unix { _request_many($_[0], $_[1], 1, @_[ 2 .. $#_ ])->[0] }

sub http_get {
    my ($port, $path, %o) = @_;
    return http_request($port, _build_request($path, %o), %o);
}

sub http_get_unix {
    my ($sock, $path, %o) = @_;
    return http_request_unix($sock, _build_request($path, %o), %o);
}

sub http_get_many {
    my ($where, $path, $n, %o) = @_;
    return _request_many($where, _build_request($path, %o), $n, %o);
}

# ------------------------------------------------------------------------------------ teardown

# On a failure, the last lines of every log in the test dir (daemons, nginx's error log, the
# sandbox manager's log, where unit output lands), so that a CI log alone explains it.
sub _diag_logs {
    my @logs;
    File::Find::find(sub { push @logs, $File::Find::name if -f $_ && /\.log\z/ && -s _ }, $TESTDIR);
    my $test = basename($0);
    for my $log (sort @logs) {
        (my $short = $log) =~ s{^\Q$TESTDIR\E/}{};
        Test::More::diag("$test: last lines of $short:\n" . _tail($log, 12));
    }
}

END {
    return unless $$ == $OWNER_PID;
    my $exit = $?;
    local $?;    # keep the test's exit status
    for my $d (reverse @DAEMONS) {
        stop_daemon($d->{name}) unless _exited($d);
    }
    sandbox_down($_) for reverse @SANDBOXES;
    if (defined $TESTDIR) {
        my $passing = Test::More->builder->is_passing;
        if ($ENV{ONDEMAND_TEST_KEEP} || $exit || !$passing) {
            _diag_logs() if $exit || !$passing;
            Test::More::diag("test files kept in $TESTDIR");
        } else {
            remove_tree($TESTDIR);
        }
    }
}

1;

__END__

=head1 NAME

Ondemand::Test - end-to-end test harness for ondemand (systemd sandbox, daemons, HTTP)

=head1 SYNOPSIS

    use Test::More;
    use Ondemand::Test;

    sandbox_up();                                   # own systemd user manager, %ENV set
    install_unit('app-a.service', testapp_unit('a', delay_ms => 200));
    systemctl('start', 'app-a.service');
    wait_for(sub { unix_connects(app_socket('a')) }, what => 'app a listening') or die;
    my $r = http_get_unix(app_socket('a'), '/');
    is($r->{status}, 200);
    is(unit_active('app-a.service'), 'active');
    done_testing();                                 # END stops daemons, takes the sandbox down

Run as root: C<prove -I t/lib t/>. Test files can run in parallel (C<prove -j4>): each has its
own temp dir, sandbox and cgroup.

=head1 DESCRIPTION

All functions are exported by default. The only state kept is this test file's temp dir, the
sandboxes it brought up and the daemons it started; all of them are cleaned up in C<END> (daemons
stopped by PID in reverse start order, then C<scripts/sandbox down>, then the temp dir removed
unless a test failed or C<ONDEMAND_TEST_KEEP=1>, in which case its path is printed).
Forked children never run that cleanup; SIGINT/SIGTERM exit through it.

To extend the harness (nginx, helperd helpers), add exported functions; build on
C<testdir>, C<start_daemon>, C<wait_for> and the HTTP helpers.

=head2 Paths

=over

=item repo_root()

Absolute path of the repository (derived from this file's location).

=item testdir()

This test file's temp dir (C</tmp/ondemand-t-XXXXXX>, created on first use). Kept short because
unix socket paths are limited to 107 bytes.

=item run_cmd(@cmd)

Runs a command (list form, no shell, stdin from F</dev/null>) and returns C<($output, $status)>:
stdout and stderr together, and the wait status as in C<$?>.

=back

=head2 systemd sandbox

=over

=item sandbox_up(%opts)

Brings up a sandbox (C<scripts/sandbox up>) with its base dir at C<testdir()/sandbox> and sets
C<%ENV> from its output: C<XDG_RUNTIME_DIR>, C<DBUS_SESSION_BUS_ADDRESS>, C<ONDEMAND_SANDBOX>,
C<ONDEMAND_SANDBOX_UNITS>, C<ONDEMAND_SANDBOX_LOG> (the manager's log, where unit output lands).
Returns a hashref of those variables. Dies with the script's output on failure.
Options: C<< name => 'other' >> brings up another sandbox in C<testdir()/other>, which by default
does B<not> change C<%ENV> (C<< activate => 1 >> makes it do so); use
C<< local @ENV{keys %$env} = values %$env >> to talk to it. Every sandbox is taken down in C<END>.

=item sandbox_down([$base])

Takes a sandbox down now (default: the one in C<$ENV{ONDEMAND_SANDBOX}>). Returns true on success.

=item install_unit($name, $text)

Writes unit C<$name> into C<$ENV{ONDEMAND_SANDBOX_UNITS}> and runs C<systemctl --user
daemon-reload>. Returns the unit file's path.

=item systemctl(@args)

Runs C<systemctl --user @args> (no shell). Returns its output (stdout and stderr); in list
context C<($output, $status)> with C<$status> as in C<$?>.

=item unit_active($unit)

The unit's C<ActiveState>: C<active>, C<inactive>, C<activating>, C<deactivating>, C<failed>...

=back

=head2 Test app

=over

=item testapp_bin()

Path of C<build/bin/ondemand-testapp> (or C<$ENV{ONDEMAND_TESTAPP}>); dies if it is not built.

=item sockdir($app), app_socket($app)

C<testdir()/apps/$app> and C<testdir()/apps/$app/app.sock>.

=item testapp_unit($app, %opts)

Returns the text of a service running C<ondemand-testapp --socket app_socket($app) --name $app>
(C<Type=simple>; C<Type=notify> + C<NotifyAccess=main> + C<--notify> with C<< notify => 1 >>).
Creates C<sockdir($app)>. Options map to the app's flags: C<delay_ms>, C<backlog>,
C<never_listen>, C<exit_before_listen> (1 = default code 3, or the exit code), C<log_requests>;
C<service> adds raw lines to the C<[Service]> section (e.g. C<"Restart=on-failure">).

=back

=head2 Daemons

=over

=item start_daemon(name => $n, cmd => [...], %opts)

Forks and execs C<cmd> (no shell) in a new session, stdin from F</dev/null>, stdout and stderr
appended to C<log> (default C<testdir()/$n.log>), extra environment from C<< env => {...} >>.
Records its PID, then waits for readiness, an event check polled every 15 ms until
C<timeout> (default 10 s): C<< ready => sub {...} >> (true when ready), or the shortcuts
C<< ready_unix => $socket_path >> (the socket accepts a connection),
C<< ready_port => $port >> (127.0.0.1:$port accepts), C<< ready_log => qr/.../ >> (a new line in
the log matches). Dies with the log's last lines if the daemon exits first or is not ready in time.
C<< stop_signal => 'QUIT' >> changes the signal C<stop_daemon> and C<END> use (e.g. nginx).
Returns the PID. Daemons still running are stopped in C<END>, in reverse start order.

=item stop_daemon($name, %opts)

Sends the daemon its stop signal (or C<< signal => 'HUP' >>), waits up to C<timeout> (10 s),
then SIGKILL. Returns its wait status (as in C<$?>, undef if unknown); an already exited daemon
just returns its status.

=item daemon_pid($name)

The PID of a running daemon, undef if it is not running (reaps it if it has exited).

=back

=head2 Waiting (event checks, never fixed sleeps)

=over

=item wait_for(sub {...}, timeout => $s, what => '...', interval => $s)

Calls the sub every 15 ms until it returns true (returns that value) or C<timeout> (default 10 s)
passes (returns false and, if C<what> is given, prints a diag naming it).

=item wait_log_line($file, qr/.../, timeout => $s, from => $offset)

Waits for a line matching the regexp (from byte offset C<from>, default 0) and returns it
(chomped), or undef on timeout. Take C<< from => log_size($file) >> before an action to wait
for a line the action causes.

=item count_log_lines($file, qr/.../, from => $offset)

The number of lines matching the regexp.

=item log_size($file)

The file's current size (0 if missing), to use as C<from>.

=back

=head2 Sockets and HTTP

Each HTTP function returns a hashref C<< { status, headers => { lowercase name => value },
body, elapsed, raw } >>. On failure C<status> is undef and C<error> says why (connect refused,
connection closed, timeout...). Options common to all: C<< timeout => $s >> (default 10).
Responses are framed by Content-Length, chunked encoding, or the connection closing.

=over

=item http_get($port, $path, %opts)

GET (or C<< method => 'POST' >>) C<$path> from 127.0.0.1:$port over HTTP/1.1 with
C<Connection: close>. Options: C<host>, C<< headers => { name => value } >> (or an arrayref of
pairs; a C<Connection> header replaces the default), C<body> (adds Content-Length; default method
then POST).

=item http_request($port, $raw, %opts)

Sends the raw request bytes to 127.0.0.1:$port and reads one response.

=item http_get_unix($socket_path, $path, %opts), http_request_unix($socket_path, $raw, %opts)

The same over a unix socket.

=item http_get_many($port_or_socket_path, $path, $n, %opts)

Opens C<$n> connections at once, sends the request on all of them, then collects all responses
with IO::Select. Returns an arrayref of C<$n> results (C<elapsed> is per connection, from its
send). A socket path (starting with C</>) instead of a port uses unix sockets.

=item unix_connects($path), tcp_connects($port)

True if a connection to the unix socket / to 127.0.0.1:$port succeeds (it is closed at once).

=item free_port()

An unused TCP port on 127.0.0.1 (bound and released; the usual small race applies).

=back

=cut
