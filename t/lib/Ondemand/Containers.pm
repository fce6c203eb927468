package Ondemand::Containers;

# Containers for the end-to-end tests (t/4*.t), on top of Ondemand::Test: the tiny local image,
# podman with private storage inside the sandbox, a private dockerd, the real unit templates from
# units/ and the app files they read. See the POD at the end.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Path qw(make_path);
use Ondemand::Test;
use Ondemand::Stack;
use Test::More;

our @EXPORT = qw(
  build_image image_name
  conf_dir write_app_conf install_template container_socket
  podman_setup podman
  start_dockerd docker docker_image_name
  container_suite
);

my $OWNER_PID = $$;
my ($PODMAN, $DOCKER);    # set up state: { env => {...} }
my $IMAGE_TAR;

sub image_name        { 'localhost/ondemand-testapp:latest' }
sub docker_image_name { 'ondemand-testapp:latest' }

sub _must_run {
    my (@cmd) = @_;
    my ($out, $status) = run_cmd(@cmd);
    croak "@cmd failed (exit " . ($status >> 8) . "):\n$out" if $status;
    return $out;
}

# Builds the image's rootfs tarball (busybox + the static test app) once per test file.
sub build_image {
    return $IMAGE_TAR if defined $IMAGE_TAR;
    my $dir = testdir() . '/image';
    _must_run(repo_root() . '/scripts/image/build', $dir);
    return $IMAGE_TAR = "$dir/rootfs.tar";
}

# %E/ondemand for the sandbox's user manager: what /etc/ondemand is on a host.
sub conf_dir {
    my $base = $ENV{ONDEMAND_SANDBOX} // croak 'conf_dir: no sandbox (call sandbox_up)';
    my $dir = "$base/config/ondemand";
    make_path("$dir/apps");
    return $dir;
}

# The socket the templates give app $app: %t/ondemand/apps/$app/app.sock.
sub container_socket {
    my ($app) = @_;
    my $run = $ENV{XDG_RUNTIME_DIR} // croak 'container_socket: no sandbox';
    return "$run/ondemand/apps/$app/app.sock";
}

# Writes conf_dir()/apps/$app.conf from key => value pairs (in order).
sub write_app_conf {
    my ($app, @kv) = @_;
    my $file = conf_dir() . "/apps/$app.conf";
    open(my $fh, '>', $file) or croak "$file: $!";
    while (my ($k, $v) = splice(@kv, 0, 2)) {
        print $fh "$k=$v\n";
    }
    close $fh or croak "$file: $!";
    return $file;
}

# Installs units/$name (a template) into the sandbox as it is.
sub install_template {
    my ($name) = @_;
    my $file = repo_root() . "/units/$name";
    open(my $fh, '<', $file) or croak "$file: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    return install_unit($name, $text);
}

# Private podman storage and a containers.conf that works in the sandbox's pure cgroup2
# namespace (scripts/podman-config, shared with bench/ and the demo), which also writes
# conf_dir()/podman.env for the units; imports the image.
sub podman_setup {
    return $PODMAN if $PODMAN;
    my %env = map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () }
        split /\n/, _must_run(repo_root() . '/scripts/podman-config', conf_dir(), testdir() . '/podman');
    croak 'scripts/podman-config printed no CONTAINERS_CONF' unless $env{CONTAINERS_CONF};
    $PODMAN = { env => \%env };
    my ($out, $status) = podman('import', '-q', build_image(), image_name());
    croak "podman import failed:\n$out" if $status;
    return $PODMAN;
}

# Runs podman with the test's storage; returns (output, status) or, in scalar context, output.
sub podman {
    croak 'podman: call podman_setup first' unless $PODMAN;
    return _cli($PODMAN, '/usr/bin/podman', @_);
}

# Runs an engine's CLI with the engine's environment (podman(), docker()).
sub _cli {
    my ($engine, @cmd) = @_;
    local @ENV{ keys %{ $engine->{env} } } = values %{ $engine->{env} };
    my ($out, $status) = run_cmd(@cmd);
    return wantarray ? ($out, $status) : $out;
}

# A private dockerd (own data and exec roots, containerd namespace and cgroup parent; no
# iptables, no bridge: containers run with --network=none), per TESTBED.md. Writes
# conf_dir()/docker.env for the units and imports the image.
sub start_dockerd {
    return $DOCKER if $DOCKER;
    my $dir = testdir() . '/docker';
    make_path($dir);
    # containerd namespaces are words of [A-Za-z0-9] joined by single '.', '_' or '-': the test
    # dir's random part may hold a '_' (ondemand-t-_jCHkA is refused)
    my $tag = "ondemand-t-$$-" . (($dir =~ s{.*/ondemand-t-([^/]+)/docker$}{$1}r) =~ tr/A-Za-z0-9/x/cr);
    my $sock = "$dir/docker.sock";
    my %env = (DOCKER_HOST => "unix://$sock");
    $DOCKER = { env => \%env, dir => $dir, cgroup => $tag };
    start_daemon(
        name => 'dockerd',
        cmd  => [ '/usr/sbin/dockerd', '--data-root', "$dir/data", '--exec-root', "$dir/exec",
                  '--pidfile', "$dir/dockerd.pid", '-H', "unix://$sock",
                  '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-forward=false',
                  '--ip-masq=false', '--storage-driver=overlay2',
                  "--containerd-namespace=$tag", "--containerd-plugins-namespace=$tag-plugins",
                  "--cgroup-parent=/$tag" ],
        log  => "$dir/dockerd.log",
        ready => sub { my (undef, $st) = docker('version'); !$st },
        timeout => 60,
    );
    _write(conf_dir() . '/docker.env', "DOCKER_HOST=unix://$sock\nONDEMAND_LOG_DRIVER=json-file\n");
    my ($out, $status) = docker('import', build_image(), docker_image_name());
    croak "docker import failed:\n$out" if $status;
    return $DOCKER;
}

# Runs the docker CLI against the private dockerd; returns as podman() does.
sub docker {
    croak 'docker: call start_dockerd first' unless $DOCKER;
    return _cli($DOCKER, '/usr/bin/docker', @_);
}

sub _write {
    my ($file, $text) = @_;
    open(my $fh, '>', $file) or croak "$file: $!";
    print $fh $text;
    close $fh or croak "$file: $!";
}

# Runs before Ondemand::Test's END (this module is loaded after it): the sandbox goes down first
# (its units stop their containers), then whatever a container engine left is removed, so that
# the test dir can be deleted and no process or cgroup stays behind.
END {
    return unless $$ == $OWNER_PID;
    local $?;
    return unless $PODMAN || $DOCKER;
    sandbox_down() if $ENV{ONDEMAND_SANDBOX} && -e "$ENV{ONDEMAND_SANDBOX}/manager.pid";
    if ($PODMAN) {
        podman('rm', '-a', '-f', '-t', '0');
        podman('system', 'reset', '-f');
    }
    if ($DOCKER) {
        my $ids = docker('ps', '-aq');
        docker('rm', '-f', split(' ', $ids)) if $ids =~ /\S/;
        stop_daemon('dockerd', timeout => 20);
        # containers' cgroups: /sys/fs/cgroup/<hierarchy>/<tag>/<id>, empty once they exited
        for my $h (glob('/sys/fs/cgroup/*/' . $DOCKER->{cgroup})) {
            system('find', $h, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';');
            Test::More::diag("cgroup $h still exists") if -d $h;
        }
        # dockerd's data root may hold mounts of containers that did not exit cleanly
        system("umount -R '$DOCKER->{dir}/data' 2>/dev/null");
        system("umount -R '$DOCKER->{dir}/exec' 2>/dev/null");
    }
}

# The end-to-end steps every container engine goes through (t/40-podman.t, t/41-docker.t):
# nginx with one upstream per app, then for each app cold start, warm request (no helperd
# traffic), the container killed from outside (helperd pushes DOWN, the next request starts it
# again), idle stop (the container is gone); then an app whose image is missing: a prompt 502
# and a reason that names the image. Options: engine (name in test names), cli (podman/docker
# function), shapes ({ app => template prefix }), unit_of (app -> unit), missing_image,
# missing_status (the unit's StatusText for the missing image; default podman's), extra_http
# (more nginx http lines, e.g. upstreams for the caller's own steps; nginx keeps running after).
sub container_suite {
    my (%o) = @_;
    my ($shape, $unit_of, $cli) = @o{qw(shapes unit_of cli)};
    my $missing_status = $o{missing_status}
        // "image $o{missing_image} not found (pull it first; PULL=never)";

    my $upstreams = $o{extra_http} // '';
    for my $app ((sort keys %$shape), 'noimg') {
        $upstreams .= <<~"EOF";
        upstream $app {
            server unix:${\ container_socket($app)};
            ondemand unit=${\ $unit_of->($app)} start_timeout=30s idle_timeout=3s;
        }
    EOF
    }
    start_nginx(http => <<~"EOF");
    $upstreams
        server {
            listen 127.0.0.1:${\ nginx_port()};
            location / { ondemand_app \$http_x_app; proxy_pass http://\$http_x_app; }
        }
    EOF

    my $get = sub { http_get(nginx_port(), $_[1] // '/', headers => { 'X-App' => $_[0] }, timeout => 40) };
    my $running = sub { scalar grep { /^ondemand-\Q$_[0]\E$/ } split /\n/, ($cli->('ps', '--format', '{{.Names}}'))[0] };

    for my $app (sort keys %$shape) {
        my $unit = $unit_of->($app);
        my $what = "$shape->{$app}\@.service";

        # -- cold
        is(unit_active($unit), 'inactive', "$what: not running before the first request");
        my $cold = $get->($app, '/cold');
        is($cold->{status}, 200, "$what: cold request: 200");
        like($cold->{body} // '', qr/^app=\Q$app\E pid=1 path=\/cold$/m,
            "$what: answered by the app as PID 1 of its container");
        is(unit_active($unit), 'active', "$what: the unit is active");
        is($running->($app), 1, "$what: $o{engine} runs the container");
        diag(sprintf "%s: cold start answered in %.0f ms", $what, $cold->{elapsed} * 1000);

        # -- warm: no helperd traffic
        my $from = log_size(helperd_log());
        my $warm = $get->($app, '/warm');
        is($warm->{status}, 200, "$what: warm request: 200");
        like($warm->{body} // '', qr/path=\/warm/, "$what: warm request reaches the app");
        is(count_log_lines(helperd_log(), qr/\b(START|WAIT)\b/, from => $from), 0,
            "$what: warm request: helperd received nothing");

        # -- killed from outside: helperd pushes DOWN, the next request starts it again
        $from = log_size(helperd_log());
        my $nfrom = log_size(nginx_error_log());
        my ($out, $st) = $cli->('kill', "ondemand-$app");
        is($st, 0, "$what: $o{engine} kill from outside") or diag($out);
        ok(wait_for(sub { unit_active($unit) =~ /^(inactive|failed)$/ }, timeout => 20,
            what => "$unit to go down"), "$what: the unit goes down with its container");
        ok(wait_log_line(nginx_error_log(), qr/ondemand: app "\Q$app\E" went down/, from => $nfrom,
            timeout => 10), "$what: nginx hears that the app went down");
        my $again = $get->($app, '/again');
        is($again->{status}, 200, "$what: the next request starts it again: 200");
        is(helperd_start_units($unit, from => $from), 1, "$what: with one new StartUnit");
        is(unit_active($unit), 'active', "$what: the unit is active again");

        # -- idle stop: the container is stopped and removed
        $from = log_size(helperd_log());
        ok(wait_log_line(helperd_log(), qr/app \Q$app\E stopped/, from => $from, timeout => 20),
            "$what: stopped after its idle timeout");
        is(unit_active($unit), 'inactive', "$what: the unit is inactive after the idle stop");
        ok(wait_for(sub { !$running->($app) }, timeout => 10, what => 'container gone'),
            "$what: the container is gone");
        ok(!-S container_socket($app), "$what: its socket is removed");
        my $after = $get->($app, '/after-idle');
        is($after->{status}, 200, "$what: a request after the idle stop starts it again");
    }

    # -- the image is missing: a prompt 502, and the error log says why
    my $nfrom = log_size(nginx_error_log());
    my $r = $get->('noimg');
    is($r->{status}, 502, 'missing image: 502');
    cmp_ok($r->{elapsed}, '<', 10, 'missing image: answered at once, not at the start timeout');
    my $line = wait_log_line(nginx_error_log(), qr/ondemand: app "noimg" failed to start/,
        from => $nfrom, timeout => 5);
    ok($line, 'missing image: the error log says the app failed to start');
    diag("reason logged: $line") if $line;
    is((run_cmd('systemctl', '--user', 'show', '-p', 'StatusText', '--value', $unit_of->('noimg')))[0],
        "$missing_status\n", "missing image: the unit's status text names the image");
    like($line // '', qr/status: \Q$missing_status\E/,
        'missing image: the reason in the error log names the image (the unit\'s StatusText)');
}

1;

__END__

=head1 NAME

Ondemand::Containers - podman and docker for ondemand's end-to-end tests

=head1 SYNOPSIS

    use Ondemand::Test;
    use Ondemand::Stack;
    use Ondemand::Containers;     # after Ondemand::Test: its END must run first

    sandbox_up();
    podman_setup();                                  # storage, containers.conf, image imported
    install_template('ondemand-podman@.service');    # units/ as shipped
    write_app_conf('blog', IMAGE => image_name(),
        CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name blog');
    # upstream blog { server unix:${\ container_socket('blog')};
    #                 ondemand unit=ondemand-podman@blog.service; }

=head1 FUNCTIONS

=over

=item build_image()

Runs C<scripts/image/build> into C<testdir()/image> (once); returns the rootfs tarball.

=item image_name(), docker_image_name()

C<localhost/ondemand-testapp:latest> (podman) and C<ondemand-testapp:latest> (docker).

=item conf_dir()

C<$ONDEMAND_SANDBOX/config/ondemand>: the sandbox manager's C<%E/ondemand>, i.e. what
C</etc/ondemand> is for a system manager. App files go into C<conf_dir()/apps>.

=item write_app_conf($app, KEY => value, ...)

Writes C<conf_dir()/apps/$app.conf>.

=item container_socket($app)

C<$XDG_RUNTIME_DIR/ondemand/apps/$app/app.sock>, the socket the templates bind-mount into the
container (C</run/ondemand/app.sock> inside).

=item install_template($file)

Installs C<units/$file> unchanged into the sandbox.

=item podman_setup(), podman(@args)

Private storage (C<testdir()/podman>), a containers.conf for the sandbox's pure cgroup2 namespace
(C<cgroups = "disabled">, crun, cgroupfs, file events, k8s-file logs, no network), and
C<conf_dir()/podman.env> pointing the units at both, all written by C<scripts/podman-config>
(which bench/ and the demo use too); imports the image. C<podman(@args)> runs
podman with that environment and returns its output (and status in list context).

=item start_dockerd(), docker(@args)

Starts a private dockerd (daemon C<dockerd>, log C<testdir()/docker/dockerd.log>), writes
C<conf_dir()/docker.env> (C<DOCKER_HOST>, json-file logs) and imports the image.
C<docker(@args)> runs the docker CLI against it.

=item container_suite(engine => 'podman', cli => \&podman, shapes => { app => 'ondemand-podman' },
unit_of => sub { ... }, missing_image => 'localhost/x:latest', missing_status => '...',
extra_http => '...')

Starts nginx and runs the end-to-end steps every engine goes through (see the comment above it).

=back

C<END> takes the sandbox down, removes containers and storage, stops dockerd by PID and
removes its containers' cgroup parent.

=cut
