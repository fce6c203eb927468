#!/bin/bash
# scripts/deps.sh SET... — installs the Debian packages of the named sets, only the missing ones.
#   build  what `make` and `make deb` need (compilers, libraries, nginx-dev, debhelper)  make deps
#   test   what `make test` needs on top: GoogleTest, the sandbox (systemd, dbus), the e2e
#          tests' tools (h2load, chromium, podman, docker, valgrind), the fuzzers and linters,
#          and `make test-deb`'s mmdebstrap and lintian                              make test-deps
#   demo   `make demo`: the sandbox and podman                                        make demo
#   bench  `make bench`: the demo's and wrk, hyperfine, h2load, docker, mmdebstrap      make bench
# At run time the packages need only nginx and systemd (and podman or docker.io): apt pulls them.
# Idempotent and non-interactive. Package scripts (nginx, docker.io, containerd) would start
# daemons on the host: a policy-rc.d forbids that while apt runs, and is removed afterwards if
# this script created it (a leftover one would silently stop every later service restart).
set -euo pipefail

BUILD=(
  build-essential cmake pkg-config libsystemd-dev libboost-dev libboost-system-dev
  libcli11-dev libtomlplusplus-dev libfmt-dev nlohmann-json3-dev
  nginx nginx-dev
  # make deb (debian/control's Build-Depends; nginx-dev brings dh_nginx and nginx_mod)
  debhelper dpkg-dev
)
SANDBOX=(systemd dbus dbus-user-session socat curl util-linux procps)
CONTAINERS=(podman crun conmon runc catatonit fuse-overlayfs uidmap busybox-static)
TEST=(
  libgtest-dev libgmock-dev googletest
  "${SANDBOX[@]}"
  # end-to-end tests
  perl libio-socket-ip-perl nghttp2-client
  # ondemand_metrics: the Prometheus text parser and a JSON schema validator (t/65-metrics.t)
  python3-prometheus-client python3-jsonschema
  # ondemand_wait_page in a real headless browser (t/67-wait-page.t)
  chromium chromium-driver python3-selenium
  # containers (t/40-podman.t, t/41-docker.t)
  "${CONTAINERS[@]}" docker.io containerd
  # t/19 and t/59, t/61: the module under valgrind
  valgrind
  # code quality: make lint
  clang-format clang-tidy
  # make fuzz: clang++ (clang, which pulls in clang-14) and libFuzzer's and the sanitizers'
  # runtimes (libclang-rt-14-dev, only recommended by clang-14)
  clang clang-14 libclang-rt-14-dev
  # make test-deb: a fresh Debian root, the packages' checks; man pages (t/47); mmdebstrap also
  # builds t/71's image with systemd inside (scripts/image/build-systemd)
  mmdebstrap lintian man-db
)
DEMO=("${SANDBOX[@]}" "${CONTAINERS[@]}")
# section 6 also times docker and the podman-systemd image (mmdebstrap)
BENCH=("${DEMO[@]}" wrk hyperfine nghttp2-client docker.io containerd mmdebstrap)

[ $# -gt 0 ] || set -- build
PACKAGES=()
for set in "$@"; do
  case $set in
  build) PACKAGES+=("${BUILD[@]}") ;;
  test) PACKAGES+=("${TEST[@]}") ;;
  demo) PACKAGES+=("${DEMO[@]}") ;;
  bench) PACKAGES+=("${BENCH[@]}") ;;
  *) echo "deps: unknown set $set (build, test, demo, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages (${missing[*]}); run as root: make deps (or test-deps)" >&2
  exit 1
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# scripts/deps.sh: no daemon starts while it installs packages\nexit 101\n' \
    > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
