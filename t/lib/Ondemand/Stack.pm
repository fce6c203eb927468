package Ondemand::Stack;

# The whole stack for end-to-end tests, on top of Ondemand::Test: the sandboxed systemd user
# manager, the real helperd, and Debian's nginx with our module loaded.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use Ondemand::Test;

our @EXPORT = qw(
  start_helperd helperd_log helperd_socket helperd_start_units
  start_nginx nginx_error_log nginx_port reload_nginx write_nginx_conf
  install_app app_unit
);

my ($NGINX_PORT, $NGINX_DIR);
our $LAST_HTTP = '';    # the http{} text of the running configuration

sub helperd_socket { testdir() . '/helperd.sock' }
sub helperd_log    { testdir() . '/helperd.log' }

# The unit name for a test app: helperd's default allowlist is ondemand-*.service.
sub app_unit { "ondemand-$_[0].service" }

# Installs the test app's unit into the sandbox; %opts as for testapp_unit.
sub install_app {
    my ($app, %opts) = @_;
    install_unit(app_unit($app), testapp_unit($app, %opts));
    return app_unit($app);
}

# Starts the real helperd on the sandbox's user bus; returns its pid.
sub start_helperd {
    my (%o) = @_;
    my $bin = repo_root() . '/build/bin/ondemand-helperd';
    croak "$bin is not built" unless -x $bin;
    unlink helperd_socket();
    return start_daemon(
        name => 'helperd',
        cmd  => [ $bin, '--user', '--socket', helperd_socket(), '--socket-mode', '0666',
                  '--log-level', 'debug', @{ $o{args} // [] } ],
        log  => helperd_log(),
        ready_unix => helperd_socket(),
    );
}

# Lines where helperd asked systemd to start $unit.
sub helperd_start_units {
    my ($unit, %o) = @_;
    return count_log_lines(helperd_log(), qr/StartUnit \Q$unit\E\b/, %o);
}

sub nginx_port      { $NGINX_PORT //= free_port() }
sub nginx_error_log { "$NGINX_DIR/error.log" }

# Starts nginx with the module and an http{} body made of `ondemand_zone`, `ondemand_helper`
# and whatever $o{http} adds (upstreams, servers: use nginx_port() in `listen`).
sub start_nginx {
    my (%o) = @_;
    $NGINX_DIR = testdir() . '/nginx';
    _write_nginx_conf(%o);
    return start_daemon(
        name        => 'nginx',
        cmd         => [ @{ $o{wrapper} // [] }, '/usr/sbin/nginx', '-p', $NGINX_DIR,
                         '-c', "$NGINX_DIR/nginx.conf", '-g', 'daemon off;' ],
        timeout     => $o{timeout} // 10,
        log         => "$NGINX_DIR/stderr.log",
        ready_port  => $NGINX_PORT,
        stop_signal => 'QUIT',
    );
}

# Rewrites nginx.conf with %o and reloads; returns once only the new workers serve (the old
# ones have exited), so that the next request sees the new configuration.
sub reload_nginx {
    my (%o) = @_;
    _write_nginx_conf(%o);
    my $master = daemon_pid('nginx');
    my @old = _children($master);
    my $from = log_size(nginx_error_log());
    kill 'HUP', $master;
    wait_log_line(nginx_error_log(), qr/start worker process/, from => $from,
        what => 'nginx reload');
    wait_for(sub { my %now = map { $_ => 1 } _children($master); !grep { $now{$_} } @old },
        timeout => 30, what => 'the old nginx workers to exit');
}

# Live (not zombie) child pids of $pid.
sub _children {
    my ($pid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open(my $fh, '<', $stat) or next;
        my $line = <$fh> // next;
        my ($kid, $state, $ppid) = $line =~ /^(\d+) \(.*\) (\S) (\d+)/ or next;
        push @kids, $kid if $ppid == $pid && $state ne 'Z';
    }
    return @kids;
}

# nginx.conf from scripts/nginx-skeleton (shared with bench/ and the demo) around $o{http}.
sub _write_nginx_conf {
    my (%o) = @_;
    $LAST_HTTP = $o{http} // '';
    write_nginx_conf($NGINX_DIR, %o);
}

# Writes $dir/nginx.conf (and its temp dirs) from scripts/nginx-skeleton: the same options as
# start_nginx(); zone => '' or helper => '' leaves that line out. For a second nginx, or nginx -t.
sub write_nginx_conf {
    my ($dir, %o) = @_;
    my $module  = repo_root() . '/build/modules/ngx_http_ondemand_module.so';
    croak "$module is not built" unless -f $module;
    my @main = (($o{master_process} // 'on') eq 'on' ? () : ('--main', "master_process $o{master_process};"));
    push @main, '--main', "worker_rlimit_nofile $o{nofile};" if $o{nofile};
    my @cmd = (repo_root() . '/scripts/nginx-skeleton', '--module', $module,
        '--workers', $o{workers} // 2, '--connections', $o{connections} // 4096,
        '--log-level', $o{log_level} // 'info', @main,
        (($o{zone} // 'x') eq '' ? () : ('--zone', $o{zone} // 'ondemand:1m')),
        (($o{helper} // 'x') eq '' ? () : ('--helper', $o{helper} // 'unix:' . helperd_socket(),
                                           '--helper-timeout', $o{helper_timeout} // '2s')),
        '--output', "$dir/" . ($o{file} // 'nginx.conf'), $dir);
    open(my $fh, '|-', @cmd) or croak "@cmd: $!";
    print $fh $o{http} // '';
    close $fh or croak "scripts/nginx-skeleton failed (exit " . ($? >> 8) . ")";
}

1;

__END__

=head1 NAME

Ondemand::Stack - nginx + helperd + sandboxed systemd for end-to-end tests

=head1 FUNCTIONS

=over

=item install_app($app, %opts)

Installs the test app as unit C<ondemand-$app.service> (options as C<testapp_unit>).

=item start_helperd(args => [...])

Starts build/bin/ondemand-helperd on the sandbox's user bus, socket C<helperd_socket()>,
log C<helperd_log()>; returns once the socket accepts connections.

=item helperd_start_units($unit, from => $offset)

How many times helperd called StartUnit for C<$unit> (from its log).

=item start_nginx(http => $text, workers => 2, helper_timeout => '2s', zone => 'ondemand:1m', master_process => 'on', wrapper => [...], log_level => 'info', connections => 4096, nofile => N)

Writes nginx.conf with C<scripts/nginx-skeleton> (module loaded, zone and helper set, C<$text>
inside http{}) and starts Debian's nginx; C<nginx_port()> is the port to C<listen> on,
C<nginx_error_log()> its log.

=item write_nginx_conf($dir, %same_as_start)

Writes C<$dir/nginx.conf> (or C<$dir/$o{file}>) the way start_nginx() does (C<zone => ''> or
C<helper => ''> leaves that line out), for a second nginx or for C<nginx -t>.

=item reload_nginx(%same_as_start)

Rewrites the configuration and sends SIGHUP; returns when new workers start.

=back

=cut
