package Ondemand::Faults;

# Shared pieces of the fault suite (t/50-*.t ... t/59-*.t, issue #11): a stack with N apps,
# apps whose start the test releases (a gate), nginx's stub_status to see how many requests are
# held, killing workers, restarting helperd on the same socket, background clients, the test
# app's request log. Everything synchronises on events (a file, a log line, a counter, a pid).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_CORK);
use Time::HiRes ();
use Ondemand::Test;
use Ondemand::Stack;

our @EXPORT = qw(
  fault_stack fault_conf gate_file open_gate install_gated_app
  stub_status wait_held wait_parsed
  nginx_workers kill_workers write_conf raw_reload nginx_dir nginx_t
  kill_helperd restart_helperd
  bg_get_many bg_done collect status_counts fmt_counts
  abort_storm
  app_log_lines app_main_pid pid_gone kill_app_main signal_pids
  access_lines h2load valgrind_wrapper valgrind_reports
);

# ------------------------------------------------------------------------------- the stack

sub nginx_dir { dirname(nginx_error_log()) }

# The file whose existence lets a gated app's unit go on starting.
sub gate_file { testdir() . "/gate-$_[0]" }

sub open_gate {
    my ($app) = @_;
    open(my $fh, '>', gate_file($app)) or croak gate_file($app) . ": $!";
    close $fh;
}

# A test app whose start waits (in ExecStartPre, the unit "activating") until open_gate($app):
# the test decides when the start ends, so "held" lasts exactly as long as the fault needs.
sub install_gated_app {
    my ($app, %opts) = @_;
    my $gate = gate_file($app);
    my $extra = $opts{service} // '';
    $opts{service} = "ExecStartPre=/bin/sh -c 'while [ ! -e $gate ]; do sleep 0.01; done'\n"
                   . "TimeoutStartSec=120\n$extra";
    return install_app($app, %opts);
}

# The http{} text for fault_stack: one upstream per app, an access log with $ondemand_status,
# stub_status on /_stub, and `location /` routing by the X-App header.
#   apps => [ name => { ondemand => 'idle_timeout=2s queue=2', ... }, ... ]
#   h2port => $port (adds `listen ... http2`), locations => '...' (more locations),
#   extra_http => '...'
sub fault_conf {
    my (%o) = @_;
    my $log = testdir() . '/access.log';
    my $http = "    log_format faults '\$http_x_app \"\$request\" \$status \$ondemand_status "
             . "\$ondemand_wait_time';\n";
    my @apps = @{ $o{apps} // [] };
    while (my ($app, $a) = splice(@apps, 0, 2)) {
        $http .= "    upstream $app { server unix:${\ app_socket($app)}; "
               . "ondemand unit=${\ ($a->{unit} // app_unit($app))} start_timeout="
               . ($a->{start_timeout} // '60s') . ' ' . ($a->{ondemand} // '') . "; }\n";
    }
    $http .= $o{extra_http} // '';
    my $listen = "listen 127.0.0.1:${\ nginx_port()};";
    $listen .= " listen 127.0.0.1:$o{h2port} http2;" if $o{h2port};
    $http .= <<"EOF";
    server {
        $listen
        access_log $log faults;
        location = /_stub { stub_status; }
        location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
${\ ($o{locations} // '')}
    }
EOF
    return (http => $http, workers => $o{workers} // 2,
        helper_timeout => $o{helper_timeout} // '5s', %{ $o{nginx} // {} });
}

# Installs the apps (gated ones with gate => 1), starts helperd (unless no_helperd) and nginx.
# Returns { port, h2port, conf => [ %start_nginx_args ] } (conf is what raw_reload takes).
sub fault_stack {
    my (%o) = @_;
    my @apps = @{ $o{apps} // [] };
    while (my ($app, $a) = splice(@apps, 0, 2)) {
        next if $a->{unit};
        my %opts = %{ $a->{app} // {} };
        $a->{gate} ? install_gated_app($app, %opts) : install_app($app, %opts);
    }
    start_helperd() unless $o{no_helperd};
    my @conf = fault_conf(%o);
    start_nginx(@conf);
    return { port => nginx_port(), h2port => $o{h2port}, conf => \@conf };
}

# nginx's stub_status as a hash: active accepts handled requests reading writing waiting.
sub stub_status {
    my ($port) = @_;
    my $r = http_get($port // nginx_port(), '/_stub', timeout => 5);
    return undef unless ($r->{status} // 0) == 200;
    my %s;
    @s{qw(active)} = $r->{body} =~ /Active connections:\s*(\d+)/;
    @s{qw(accepts handled requests)} = $r->{body} =~ /^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/m;
    @s{qw(reading writing waiting)} =
      $r->{body} =~ /Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)/;
    return \%s;
}

# Waits until at least $n requests are being processed and none is being read: with the app
# not started yet, those are the held requests (the stub_status request itself is not counted).
sub wait_held {
    my ($n, %o) = @_;
    my $last;
    my $ok = wait_for(sub {
        $last = stub_status($o{port});
        $last && $last->{writing} - 1 >= $n && $last->{reading} == 0;
    }, timeout => $o{timeout} // 20, interval => 0.05);
    Test::More::diag("wait_held($n): last stub_status: "
        . join(' ', map { "$_=" . ($last->{$_} // '?') } sort keys %{ $last // {} })) unless $ok || $o{quiet};
    return $ok;
}

# Waits until nginx has parsed $n more requests than $base->{requests} (stub_status, the status
# requests themselves included) and reads none: every request of a batch has reached the module.
sub wait_parsed {
    my ($base, $n, %o) = @_;
    my $polls = 0;
    return wait_for(sub {
        my $s = stub_status($o{port}) or return 0;
        $polls++;
        $s->{requests} - $polls >= $base->{requests} + $n && $s->{reading} == 0;
    }, timeout => $o{timeout} // 20, interval => 0.05,
        what => $o{quiet} ? undef : "nginx to parse $n requests");
}

# ---------------------------------------------------------------------------- nginx control

# kill() that only ever signals real processes: pids 0, 1 and negative ones (a process group,
# or everything) are refused.
sub signal_pids {
    my ($sig, @pids) = @_;
    my @ok = grep { defined && /^\d+$/ && $_ > 1 } @pids;
    croak "signal_pids: refusing to signal @pids" if @ok != @pids;
    return @ok ? kill($sig, @ok) : 0;
}

sub nginx_workers {
    my ($master) = @_;
    $master //= daemon_pid('nginx') // croak 'nginx is not running';
    my @kids = sort { $a <=> $b } Ondemand::Stack::_children($master);
    return wantarray ? @kids : scalar @kids;
}

# SIGKILLs nginx's workers (all of them, or those given) and waits for the master to replace
# them; returns the new workers' pids.
sub kill_workers {
    my (@victims) = @_;
    my $master = daemon_pid('nginx') // croak 'nginx is not running';
    my @before = nginx_workers($master);
    @victims = @before unless @victims;
    signal_pids('KILL', @victims);
    my %dead = map { $_ => 1 } @victims;
    my @now;
    wait_for(sub {
        @now = nginx_workers($master);
        @now == @before && !grep { $dead{$_} } @now;
    }, timeout => 20, what => 'nginx to replace the killed workers') or return;
    return @now;
}

# Writes nginx.conf (same arguments as start_nginx) without telling nginx; returns its path.
sub write_conf {
    my (@conf) = @_;
    Ondemand::Stack::_write_nginx_conf(@conf);
    return nginx_dir() . '/nginx.conf';
}

# Rewrites nginx.conf (same arguments as start_nginx) and sends SIGHUP. Unlike reload_nginx, it
# does not wait for the old workers to exit (they may hold requests). Returns (1, line) once a
# new worker starts, (0, the [emerg] line) if the configuration was refused.
sub raw_reload {
    my (@conf) = @_;
    write_conf(@conf);
    my $from = log_size(nginx_error_log());
    signal_pids('HUP', daemon_pid('nginx') // croak 'nginx is not running');
    my $line = wait_log_line(nginx_error_log(), qr/start worker process|\[emerg\]/,
        from => $from, timeout => 30, what => 'the reload to finish');
    return (0, 'no reload outcome logged') unless defined $line;
    return ($line =~ /\[emerg\]/ ? 0 : 1, $line);
}

# `nginx -t` on a configuration file; returns (ok, output).
sub nginx_t {
    my ($conf) = @_;
    my ($out, $status) = run_cmd('/usr/sbin/nginx', '-t', '-p', dirname($conf), '-c', $conf);
    return ($status == 0, $out);
}

# ------------------------------------------------------------------------------------ helperd

sub kill_helperd {
    my ($signal) = @_;
    return stop_daemon('helperd', signal => $signal // 'KILL', timeout => 20);
}

# Kills helperd with $signal, waits until it has exited, waits $delay seconds (the fault's
# parameter: how long a supervisor takes), then starts it again on the same socket.
sub restart_helperd {
    my (%o) = @_;
    kill_helperd($o{signal});
    Time::HiRes::sleep($o{delay}) if $o{delay};
    return start_helperd();
}

# ----------------------------------------------------------------------------------- clients

# Runs http_get_many in a child process; returns a handle for collect().
sub bg_get_many {
    my ($where, $path, $n, %o) = @_;
    my $file = testdir() . "/bg-$$-" . int(rand(1e9));
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        my $res = http_get_many($where, $path, $n, timeout => 60, %o);
        open(my $fh, '>', "$file.tmp") or POSIX::_exit(1);
        for my $r (@$res) {
            my $err = $r->{error} // '';
            $err =~ s/\s+/ /g;
            print $fh join("\t", $r->{status} // 'none', $r->{headers}{'x-pid'} // '', $err), "\n";
        }
        close $fh;
        rename("$file.tmp", $file);
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, n => $n };
}

# True once a bg_get_many child has written its results (without reaping it).
sub bg_done { -e $_[0]{file} }

# Waits for a bg_get_many child; returns an arrayref of { status, pid, error }.
sub collect {
    my ($h) = @_;
    waitpid($h->{pid}, 0);
    open(my $fh, '<', $h->{file}) or return [ map { { status => 'none', error => 'client died' } } 1 .. $h->{n} ];
    my @r;
    while (<$fh>) {
        chomp;
        my ($s, $pid, $err) = split /\t/, $_, 3;
        push @r, { status => $s, pid => $pid, error => $err };
    }
    close $fh;
    unlink $h->{file};
    return \@r;
}

sub status_counts {
    my ($res) = @_;
    my %c;
    $c{ $_->{status} // 'none' }++ for @$res;
    return \%c;
}

sub fmt_counts {
    my ($c) = @_;
    return join(', ', map { "$_: $c->{$_}" } sort keys %$c);
}

# $n clients each connect, then send "GET $path_prefix$i" and close at once: with TCP_CORK the
# FIN leaves in the same segment as the request, so nginx reads the request and the end of the
# connection together. Returns the paths sent.
sub abort_storm {
    my ($port, $n, %o) = @_;
    my $prefix = $o{prefix} // '/abort-';
    my @socks;
    for my $i (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
          or croak "abort_storm: connect: $!";
        push @socks, $s;
    }
    my @paths;
    for my $i (1 .. $n) {
        my $s = $socks[ $i - 1 ];
        setsockopt($s, IPPROTO_TCP, TCP_CORK, 1);
        my $path = "$prefix$i";
        push @paths, $path;
        my $h = join '', map { "$_: $o{headers}{$_}\r\n" } sort keys %{ $o{headers} // {} };
        syswrite($s, "GET $path HTTP/1.1\r\nHost: localhost\r\n$h\r\n");
        close $s;    # the FIN is tacked onto the corked request
    }
    return @paths;
}

# ---------------------------------------------------------------------------------- app side

# Lines the test app $app wrote (stdout/stderr land in the sandbox manager's log), optionally
# only those matching $re: with --log-requests, "<status> <target>" per request.
sub app_log_lines {
    my ($app, $re) = @_;
    my $log = $ENV{ONDEMAND_SANDBOX_LOG} // croak 'no sandbox';
    open(my $fh, '<', $log) or return ();
    my @l = grep { /ondemand-testapp\[\Q$app\E\/\d+\]: / } <$fh>;
    @l = grep { /$re/ } @l if $re;
    chomp @l;
    return @l;
}

sub app_main_pid {
    my ($unit) = @_;
    my $pid = systemctl('show', '--property=MainPID', '--value', $unit);
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : 0;
}

# SIGKILLs the main process of $unit (its MainPID, never 0 or 1) and waits until it is gone
# and systemd no longer counts the unit active. Returns the pid, or 0 if the unit had none.
sub kill_app_main {
    my ($unit) = @_;
    my $pid = app_main_pid($unit);
    return 0 unless $pid > 1;
    signal_pids('KILL', $pid);
    wait_for(sub { pid_gone($pid) && unit_active($unit) ne 'active' }, timeout => 10,
        what => "$unit (main pid $pid) to die") or return 0;
    return $pid;
}

# True when $pid no longer runs (gone or a zombie).
sub pid_gone {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return 1;
    my $l = <$fh> // return 1;
    return $l =~ /^\d+ \(.*\) Z/ ? 1 : 0;
}

# Access log lines (fault_conf's format: app "request" status ondemand_status wait_ms).
sub access_lines {
    my ($re) = @_;
    open(my $fh, '<', testdir() . '/access.log') or return ();
    my @l = <$fh>;
    chomp @l;
    return $re ? grep { /$re/ } @l : @l;
}

# Runs h2load; returns { out, exit, done, succeeded, failed, '2xx', '3xx', '4xx', '5xx' }.
sub h2load {
    my (@args) = @_;
    # as many descriptors as the hard limit allows: a burst of thousands of connections
    my ($out, $status) = run_cmd('sh', '-c', 'ulimit -n "$(ulimit -Hn)"; exec h2load "$@"', 'h2load', @args);
    my %r = (out => $out, exit => $status >> 8);
    @r{qw(total started done succeeded failed)} =
      $out =~ /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/;
    @r{qw(2xx 3xx 4xx 5xx)} = $out =~ /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/;
    return \%r;
}

# valgrind around every nginx process (master and forked workers), leak checking on, one log
# per process in $dir (created); nginx's own known leaks suppressed (t/valgrind-nginx.supp).
sub valgrind_wrapper {
    my ($dir) = @_;
    mkdir $dir or croak "$dir: $!";
    return [ 'valgrind', '--quiet', '--error-exitcode=99', '--trace-children=yes',
             '--leak-check=full', '--show-leak-kinds=definite',
             '--errors-for-leak-kinds=definite', "--log-file=$dir/vg.%p",
             '--suppressions=' . repo_root() . '/t/valgrind-nginx.supp' ];
}

# The valgrind logs in $dir (one per process) and the non-empty ones as "file:\ntext" reports;
# %o{skip}: pids whose log is not read (a SIGKILLed worker leaves none).
sub valgrind_reports {
    my ($dir, %o) = @_;
    my %skip = map { $_ => 1 } @{ $o{skip} // [] };
    my @logs = glob "$dir/vg.*";
    my @reports;
    for my $f (@logs) {
        my ($pid) = $f =~ /(\d+)$/;
        next if $skip{$pid};
        my $text = do { local $/; open(my $fh, '<', $f) or croak "$f: $!"; <$fh> } // '';
        push @reports, "$f:\n$text" if $text ne '';
    }
    return (\@logs, \@reports);
}

1;

__END__

=head1 NAME

Ondemand::Faults - fault injection helpers for the fault suite (t/5*.t, issue #11)

=head1 FUNCTIONS

=over

=item valgrind_wrapper($dir), valgrind_reports($dir, skip => [$pid])

nginx under valgrind (wrapper for start_nginx) and the reports it left.

=item fault_stack(apps => [ name => {...}, ... ], h2port => $p, locations => '...', helper_timeout => '5s', no_helperd => 1)

Installs the apps (C<< app => {testapp_unit options} >>, C<< gate => 1 >> for a gated app,
C<< ondemand => '...' >> more parameters of the C<ondemand> directive, C<< unit => ... >> for
a unit installed by the test), starts helperd and nginx (2 workers). C<location /> routes by the
C<X-App> header; C</_stub> is stub_status; the access log (C<access_lines>) has
C<$ondemand_status>. Returns C<< { port, h2port, conf } >>.

=item install_gated_app($app, %opts), open_gate($app), gate_file($app)

A test app whose unit waits in C<ExecStartPre> until the test calls C<open_gate>.

=item stub_status(), wait_held($n), wait_parsed($base, $n)

nginx's counters; C<wait_held> waits until C<$n> requests are held (writing, none reading).

=item nginx_workers(), kill_workers(@pids), raw_reload(%conf), nginx_t($conf_file)

=item kill_helperd($signal), restart_helperd(signal => 'KILL', delay => $s)

=item bg_get_many($where, $path, $n, %opts), collect($h), status_counts($res), fmt_counts($c)

=item abort_storm($port, $n, prefix => '/abort-', headers => {...})

=item app_log_lines($app, $re), app_main_pid($unit), pid_gone($pid), access_lines($re), h2load(@args)

=back

=cut
