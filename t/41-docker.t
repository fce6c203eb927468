#!/usr/bin/perl
# Real docker containers end to end, through nginx + helperd + the sandbox's systemd, with
# units/ondemand-docker@.service as shipped, against a private dockerd (own data and exec roots,
# containerd namespace and cgroup parent, no iptables, no bridge; stopped by PID at the end).
# Cold start, warm request (no helperd traffic), the container killed from outside (helperd pushes
# DOWN, the next request starts it again), idle stop (the container is gone), and an app whose
# image is missing: a prompt 502 and a clear reason.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

plan skip_all => 'docker is not installed' unless -x '/usr/bin/docker' && -x '/usr/sbin/dockerd';

sandbox_up();
start_dockerd();
install_template('ondemand-docker@.service');

my %shape = (dk => 'ondemand-docker');
for my $app (sort keys %shape) {
    write_app_conf($app, IMAGE => docker_image_name(),
        CMD => "/bin/ondemand-testapp --socket /run/ondemand/app.sock --name $app");
}
write_app_conf('noimg', IMAGE => 'ondemand-nosuch:latest',
    CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name noimg');
start_helperd();

sub unit_of { my ($app) = @_; "ondemand-docker\@$app.service" }

container_suite(engine => 'docker', cli => \&docker, shapes => \%shape, unit_of => \&unit_of,
    missing_image => 'ondemand-nosuch:latest');

done_testing();
