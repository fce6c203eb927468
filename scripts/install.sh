#!/bin/bash
# scripts/install.sh install|uninstall|list — installs ondemand from a built tree (`make` first).
# `make install` / `make uninstall` call it; both honour PREFIX (default /usr/local) and DESTDIR
# (a staging root, for packaging). It only copies files: it starts, enables and reloads nothing
# (it prints what to run next). docs/install.md walks through an installation.
#
#   $PREFIX/sbin/ondemand-helperd, $PREFIX/bin/ondemandctl
#   $NGINX_MODULES_DIR/ngx_http_ondemand_module.so          (default /usr/lib/nginx/modules)
#   /usr/share/nginx/modules-available/mod-http-ondemand.conf  (load_module line, Debian style)
#   /etc/nginx/modules-enabled/50-mod-http-ondemand.conf -> it  (unless ENABLE_MODULE=0)
#   $SYSTEMD_UNIT_DIR/ondemand-*.service, .socket               (default $PREFIX/lib/systemd/system)
#   $POLKIT_RULES_DIR/50-ondemand.rules                         (default /etc/polkit-1/rules.d;
#                                                                /usr/share/... when PREFIX=/usr)
#   $PREFIX/share/ondemand/ondemand-helperd.service.d/nonroot.conf  (an opt-in drop-in)
#   $PREFIX/share/doc/ondemand/*.md and examples/
#   /etc/ondemand/apps/ (created; existing app files are never touched or removed)
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/
NGINX_MODULES_DIR=${NGINX_MODULES_DIR:-/usr/lib/nginx/modules}
NGINX_MODULES_AVAILABLE=${NGINX_MODULES_AVAILABLE:-/usr/share/nginx/modules-available}
NGINX_MODULES_ENABLED=${NGINX_MODULES_ENABLED:-/etc/nginx/modules-enabled}
ENABLE_MODULE=${ENABLE_MODULE:-1}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-$PREFIX/lib/systemd/system}
if [ "$PREFIX" = /usr ]; then
  POLKIT_RULES_DIR=${POLKIT_RULES_DIR:-/usr/share/polkit-1/rules.d}
else
  POLKIT_RULES_DIR=${POLKIT_RULES_DIR:-/etc/polkit-1/rules.d}
fi
SYSCONF_DIR=${SYSCONF_DIR:-/etc/ondemand}
SBINDIR=$PREFIX/sbin
BINDIR=$PREFIX/bin
DATADIR=$PREFIX/share/ondemand
DOCDIR=$PREFIX/share/doc/ondemand

UNITS=(ondemand-helperd.service ondemand-helperd.socket ondemand-podman@.service
  ondemand-podman-simple@.service ondemand-podman-systemd@.service ondemand-docker@.service
  ondemand-exec@.service)
DOCS=(README.md docs/units.md docs/install.md docs/directives.md docs/helperd.md
  docs/lifecycle.md docs/PROTOCOL.md docs/design.md)

log() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

# The files this installs (destination paths, without DESTDIR), one per line.
manifest() {
  echo "$SBINDIR/ondemand-helperd"
  echo "$BINDIR/ondemandctl"
  echo "$NGINX_MODULES_DIR/ngx_http_ondemand_module.so"
  echo "$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf"
  [ "$ENABLE_MODULE" = 0 ] || echo "$NGINX_MODULES_ENABLED/50-mod-http-ondemand.conf"
  local u d
  for u in "${UNITS[@]}"; do echo "$SYSTEMD_UNIT_DIR/$u"; done
  echo "$POLKIT_RULES_DIR/50-ondemand.rules"
  echo "$DATADIR/ondemand-helperd.service.d/nonroot.conf"
  for d in "${DOCS[@]}"; do [ -e "$TOP/$d" ] && echo "$DOCDIR/$(basename "$d")"; done
  echo "$DOCDIR/examples/blog.conf"
  echo "$DOCDIR/examples/nginx-ondemand.conf"
}

# Units and docs name the installed paths: rewrite the /usr/local defaults for this PREFIX.
rewrite() {
  sed -e "s|/usr/local/sbin/ondemand-helperd|$SBINDIR/ondemand-helperd|g" \
      -e "s|/usr/local/share/doc/ondemand|$DOCDIR|g" \
      -e "s|/usr/local/bin/ondemandctl|$BINDIR/ondemandctl|g" "$1"
}

put() { # put MODE SRC DEST [rewrite]
  local mode=$1 src=$2 dest=$DESTDIR$3
  install -d -m 0755 "$(dirname "$dest")"
  if [ "${4:-}" = rewrite ]; then
    rewrite "$src" > "$dest.tmp.$$"
    chmod "$mode" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
  else
    install -m "$mode" "$src" "$dest"
  fi
}

do_install() {
  local f
  for f in build/bin/ondemand-helperd build/bin/ondemandctl build/modules/ngx_http_ondemand_module.so; do
    [ -e "$TOP/$f" ] || die "$f is not built: run make first"
  done
  put 0755 "$TOP/build/bin/ondemand-helperd" "$SBINDIR/ondemand-helperd"
  put 0755 "$TOP/build/bin/ondemandctl" "$BINDIR/ondemandctl"
  put 0644 "$TOP/build/modules/ngx_http_ondemand_module.so" "$NGINX_MODULES_DIR/ngx_http_ondemand_module.so"
  install -d -m 0755 "$DESTDIR$NGINX_MODULES_AVAILABLE"
  printf 'load_module modules/ngx_http_ondemand_module.so;\n' \
    > "$DESTDIR$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf"
  if [ "$ENABLE_MODULE" != 0 ]; then
    install -d -m 0755 "$DESTDIR$NGINX_MODULES_ENABLED"
    ln -sfn "$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf" \
      "$DESTDIR$NGINX_MODULES_ENABLED/50-mod-http-ondemand.conf"
  fi
  for f in "${UNITS[@]}"; do put 0644 "$TOP/units/$f" "$SYSTEMD_UNIT_DIR/$f" rewrite; done
  put 0644 "$TOP/units/50-ondemand.rules" "$POLKIT_RULES_DIR/50-ondemand.rules"
  put 0644 "$TOP/units/ondemand-helperd.service.d/nonroot.conf" \
    "$DATADIR/ondemand-helperd.service.d/nonroot.conf"
  for f in "${DOCS[@]}"; do
    [ -e "$TOP/$f" ] && put 0644 "$TOP/$f" "$DOCDIR/$(basename "$f")" rewrite
  done
  put 0644 "$TOP/units/examples/blog.conf" "$DOCDIR/examples/blog.conf"
  put 0644 "$TOP/units/examples/nginx-ondemand.conf" "$DOCDIR/examples/nginx-ondemand.conf" rewrite
  install -d -m 0755 "$DESTDIR$SYSCONF_DIR" "$DESTDIR$SYSCONF_DIR/apps"
  log "installed into ${DESTDIR:-/} (PREFIX=$PREFIX)"
  if [ -z "$DESTDIR" ]; then
    log "next: systemctl daemon-reload && systemctl enable --now ondemand-helperd.socket"
    log "      then describe apps in $SYSCONF_DIR/apps/ (see $DOCDIR/install.md)"
  fi
}

do_uninstall() {
  local f
  while IFS= read -r f; do
    if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then
      rm -f "$DESTDIR$f"
    fi
  done < <(manifest)
  # our own directories, if now empty (never /etc/ondemand: it holds the operator's app files)
  for f in "$DOCDIR/examples" "$DOCDIR" "$DATADIR/ondemand-helperd.service.d" "$DATADIR"; do
    [ -d "$DESTDIR$f" ] && rmdir "$DESTDIR$f" 2>/dev/null || true
  done
  log "removed from ${DESTDIR:-/} (PREFIX=$PREFIX); $SYSCONF_DIR is left as it is"
  if [ -z "$DESTDIR" ]; then
    log "next: systemctl daemon-reload (and nginx -t && systemctl reload nginx)"
  fi
}

case "${1:-}" in
  install) do_install ;;
  uninstall) do_uninstall ;;
  list) manifest ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
