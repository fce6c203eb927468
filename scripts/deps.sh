#!/bin/bash
# Installs every Debian package ondemand needs to build, test, demo and benchmark.
# Idempotent and non-interactive; keeps package scripts from starting daemons.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config libsystemd-dev libboost-dev libboost-system-dev
  libcli11-dev libtomlplusplus-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev googletest
  nginx nginx-dev
  # test bed: a real systemd user manager and its bus
  systemd dbus dbus-user-session socat curl util-linux procps
  # end-to-end tests
  perl libio-socket-ip-perl
  # ondemand_metrics: the Prometheus text parser and a JSON schema validator (t/65-metrics.t)
  python3-prometheus-client python3-jsonschema
  # ondemand_wait_page in a real headless browser (t/67-wait-page.t)
  chromium chromium-driver python3-selenium
  # containers
  podman crun conmon runc catatonit fuse-overlayfs uidmap busybox-static
  docker.io containerd
  # the Debian root with systemd inside for the podman-systemd template (scripts/image/build-systemd)
  mmdebstrap
  # benchmarks
  wrk nghttp2-client hyperfine
  # code quality
  clang-format clang-tidy valgrind
  # make fuzz: clang++ (clang, which pulls in clang-14) and libFuzzer's and the sanitizers'
  # runtimes (libclang-rt-14-dev, only recommended by clang-14)
  clang clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages (${missing[*]}); run as root: make deps" >&2
  exit 1
fi
# Package scripts of nginx, docker.io and containerd would start daemons on the host.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
