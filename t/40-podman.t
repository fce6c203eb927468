#!/usr/bin/perl
# Real podman containers end to end, through nginx + helperd + the sandbox's systemd, with the
# unit templates as shipped in units/: ondemand-podman@.service (Type=notify, --sdnotify=conmon)
# and ondemand-podman-simple@.service (Type=simple, podman in the foreground).
# For each shape: cold start, warm request (same container, no helperd traffic), idle stop (the
# container is gone), the container killed from outside (helperd pushes DOWN, the next request
# starts it again). Then an app whose image is missing: a prompt 502 and a clear reason.

use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Ondemand::Test;
use Ondemand::Stack;
use Ondemand::Containers;

plan skip_all => 'podman is not installed' unless -x '/usr/bin/podman';

sandbox_up();
podman_setup();
install_template('ondemand-podman@.service');
install_template('ondemand-podman-simple@.service');

my %shape = (pn => 'ondemand-podman', ps => 'ondemand-podman-simple');
for my $app (sort keys %shape) {
    write_app_conf($app, IMAGE => image_name(),
        CMD => "/bin/ondemand-testapp --socket /run/ondemand/app.sock --name $app");
}
write_app_conf('noimg', IMAGE => 'localhost/ondemand-nosuch:latest',
    CMD => '/bin/ondemand-testapp --socket /run/ondemand/app.sock --name noimg');
start_helperd();

sub unit_of { my ($app) = @_; ($shape{$app} // 'ondemand-podman') . "\@$app.service" }

container_suite(engine => 'podman', cli => \&podman, shapes => \%shape, unit_of => \&unit_of,
    missing_image => 'localhost/ondemand-nosuch:latest');

done_testing();
