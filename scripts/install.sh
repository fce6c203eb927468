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
#   $SYSTEMD_UNIT_DIR/ondemand-*.service, .socket, .slice       (default $PREFIX/lib/systemd/system)
#   $TMPFILES_DIR/ondemand.conf  (/run/ondemand/apps 0750 root:www-data; default $PREFIX/lib/tmpfiles.d)
#   $POLKIT_RULES_DIR/50-ondemand.rules                         (default /etc/polkit-1/rules.d;
#                                                                /usr/share/... when PREFIX=/usr)
#   $PREFIX/share/ondemand/ondemand-helperd.service.d/root.conf  (opt-in: helperd as root)
#   $PREFIX/share/doc/ondemand/*.md, LICENSE and examples/
#   $PREFIX/share/man/man8/ondemand-helperd.8, man1/ondemandctl.1   (docs/man/)
#   $BASH_COMPLETION_DIR/ondemandctl    (default $PREFIX/share/bash-completion/completions)
#   /etc/ondemand/helperd.toml (helperd's settings; only when missing, never removed)
#   /etc/ondemand/helperd.key (the key nginx and helperd share: 32 random bytes as 64 hex
#                              digits, 0600 root:root; only when missing, never removed; not
#                              under a DESTDIR: every copy of a package would share it)
#   /etc/ondemand/apps/ (2750 root:ondemand: helperd reads the app files through the group, and
#                        new files get the group; existing app files are never touched or removed,
#                        but those others may read or write are named)
# and the system user `ondemand` that the helperd unit runs as (unless it exists; under a
# DESTDIR only when DESTDIR/etc/passwd exists, with useradd --root; never removed).
# debian/rules stages the `ondemand` package with it: BIN_DIR (the built binaries, default
# build/bin), INSTALL_MODULE=0 (the module and its load line are left to nginx-dev's nginx_mod
# buildsystem and dh_nginx) and SYSTEMD_UNIT_DIR=/lib/systemd/system.
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
INSTALL_MODULE=${INSTALL_MODULE:-1}
BIN_DIR=${BIN_DIR:-$TOP/build/bin}
MODULE_FILE=${MODULE_FILE:-$TOP/build/modules/ngx_http_ondemand_module.so}
SYSTEMD_UNIT_DIR=${SYSTEMD_UNIT_DIR:-$PREFIX/lib/systemd/system}
TMPFILES_DIR=${TMPFILES_DIR:-$PREFIX/lib/tmpfiles.d}
if [ "$PREFIX" = /usr ]; then
  POLKIT_RULES_DIR=${POLKIT_RULES_DIR:-/usr/share/polkit-1/rules.d}
else
  POLKIT_RULES_DIR=${POLKIT_RULES_DIR:-/etc/polkit-1/rules.d}
fi
SYSCONF_DIR=${SYSCONF_DIR:-/etc/ondemand}
HELPERD_USER=ondemand
SBINDIR=$PREFIX/sbin
BINDIR=$PREFIX/bin
DATADIR=$PREFIX/share/ondemand
DOCDIR=$PREFIX/share/doc/ondemand
MANDIR=$PREFIX/share/man
BASH_COMPLETION_DIR=${BASH_COMPLETION_DIR:-$PREFIX/share/bash-completion/completions}

UNITS=(ondemand-helperd.service ondemand-helperd.socket ondemand-podman@.service
  ondemand-podman-simple@.service ondemand-podman-systemd@.service ondemand-docker@.service
  ondemand-exec@.service ondemand-oci@.service ondemand-apps.slice)
DOCS=(README.md docs/units.md docs/install.md docs/directives.md docs/helperd.md
  docs/lifecycle.md docs/PROTOCOL.md docs/design.md LICENSE)

log() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

# The files this installs (destination paths, without DESTDIR), one per line.
manifest() {
  echo "$SBINDIR/ondemand-helperd"
  echo "$BINDIR/ondemandctl"
  if [ "$INSTALL_MODULE" != 0 ]; then
    echo "$NGINX_MODULES_DIR/ngx_http_ondemand_module.so"
    echo "$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf"
    [ "$ENABLE_MODULE" = 0 ] || echo "$NGINX_MODULES_ENABLED/50-mod-http-ondemand.conf"
  fi
  echo "$MANDIR/man8/ondemand-helperd.8"
  echo "$MANDIR/man1/ondemandctl.1"
  echo "$BASH_COMPLETION_DIR/ondemandctl"
  local u d
  for u in "${UNITS[@]}"; do echo "$SYSTEMD_UNIT_DIR/$u"; done
  echo "$TMPFILES_DIR/ondemand.conf"
  echo "$POLKIT_RULES_DIR/50-ondemand.rules"
  echo "$DATADIR/ondemand-helperd.service.d/root.conf"
  for d in "${DOCS[@]}"; do [ -e "$TOP/$d" ] && echo "$DOCDIR/$(basename "$d")"; done
  echo "$DOCDIR/examples/blog.conf"
  echo "$DOCDIR/examples/nginx-ondemand.conf"
  echo "$DOCDIR/examples/nginx-ondemand-wake.conf"
  for d in prometheus.yml grafana-ondemand.json ondemand-metrics.schema.json; do
    echo "$DOCDIR/examples/$d"
  done
  echo "$DOCDIR/examples/helperd.toml"
  echo "$SYSCONF_DIR/helperd.toml"
}

# Units and docs name the installed paths: rewrite the /usr/local defaults for this PREFIX.
rewrite() {
  sed -e "s|/usr/local/sbin/ondemand-helperd|$SBINDIR/ondemand-helperd|g" \
      -e "s|/usr/local/share/doc/ondemand|$DOCDIR|g" \
      -e "s|/usr/local/bin/ondemandctl|$BINDIR/ondemandctl|g" \
      -e "s|/etc/ondemand/helperd.toml|$SYSCONF_DIR/helperd.toml|g" \
      -e "s|/etc/ondemand/helperd.key|$SYSCONF_DIR/helperd.key|g" \
      -e "s|/etc/ondemand/apps|$SYSCONF_DIR/apps|g" "$1"
}

put() { # put MODE SRC DEST [rewrite]
  local mode=$1 src=$2 dest=$DESTDIR$3
  # an existing directory keeps its mode (/etc/polkit-1/rules.d is 0700 on Debian)
  [ -d "$(dirname "$dest")" ] || install -d -m 0755 "$(dirname "$dest")"
  if [ "${4:-}" = rewrite ]; then
    rewrite "$src" > "$dest.tmp.$$"
    chmod "$mode" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
  else
    install -m "$mode" "$src" "$dest"
  fi
}

# The system user helperd runs as (units/ondemand-helperd.service: User=ondemand). Created only
# when missing; on the real root with adduser (Debian) or useradd, under a DESTDIR only when it
# holds an etc/passwd (useradd --root); otherwise the package's postinst must create it.
create_user() {
  if [ -n "$DESTDIR" ]; then
    if [ ! -f "$DESTDIR/etc/passwd" ]; then
      log "not creating the system user $HELPERD_USER under DESTDIR (no $DESTDIR/etc/passwd)"
      return 0
    fi
    if grep -q "^$HELPERD_USER:" "$DESTDIR/etc/passwd"; then
      log "system user $HELPERD_USER exists"
      return 0
    fi
    useradd --root "$(cd "$DESTDIR" && pwd)" --system --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin --comment 'ondemand helper daemon' \
      "$HELPERD_USER" 2>&1 | { grep -v 'missing or non-executable shell' || true; }
    log "created the system user $HELPERD_USER under $DESTDIR"
    return 0
  fi
  if getent passwd "$HELPERD_USER" >/dev/null; then
    log "system user $HELPERD_USER exists"
  elif command -v adduser >/dev/null; then
    adduser --quiet --system --group --no-create-home --home /nonexistent \
      --gecos 'ondemand helper daemon' "$HELPERD_USER"
    log "created the system user $HELPERD_USER"
  else
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment 'ondemand helper daemon' "$HELPERD_USER"
    log "created the system user $HELPERD_USER"
  fi
}

# The key nginx and helperd share (docs/helperd.md, "Security model"): generated once per machine,
# never under a DESTDIR (a staged root becomes a package that many machines install).
create_key() {
  local key=$SYSCONF_DIR/helperd.key
  if [ -n "$DESTDIR" ]; then
    log "not generating $key under DESTDIR: the package's postinst must (see install.md)"
    return 0
  fi
  if [ -e "$key" ]; then
    log "$key exists: kept"
    return 0
  fi
  # 32 bytes of /dev/urandom as 64 hex digits (coreutils only), written 0600 from the start
  local hex
  hex=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
  [ ${#hex} = 64 ] || die "could not read 32 random bytes from /dev/urandom"
  (umask 077 && printf '%s\n' "$hex" > "$key.tmp.$$")
  chown root:root "$key.tmp.$$"
  chmod 0600 "$key.tmp.$$"
  mv -f "$key.tmp.$$" "$key"
  log "generated $key (0600 root:root): nginx's ondemand_helper ... key=$key; needs a helperd restart"
}

# The app files are root-equivalent (ARGS and IMAGE reach `podman run`, EXEC is a command line)
# and may hold the apps' secrets: /etc/ondemand/apps is 2750 root:ondemand (helperd, the user
# ondemand, reads them through the group; setgid, so new files get the group). Existing app files
# keep their modes, but those others may read or write are named (docs/install.md).
secure_apps_dir() {
  local dir=$DESTDIR$SYSCONF_DIR/apps gid f loose=()
  if [ -n "$DESTDIR" ]; then
    gid=$(awk -F: -v g="$HELPERD_USER" '$1 == g { print $3 }' "$DESTDIR/etc/group" 2>/dev/null || true)
  else
    gid=$(getent group "$HELPERD_USER" | cut -d: -f3)
  fi
  if [ -n "$gid" ]; then
    chown "0:$gid" "$dir"
  else
    log "no group $HELPERD_USER: $SYSCONF_DIR/apps stays root's (the package's postinst must chgrp it)"
  fi
  chmod 2750 "$dir"
  for f in "$dir"/*.conf; do
    [ -e "$f" ] || continue
    [ -n "$(find "$f" -maxdepth 0 -perm /0026)" ] && loose+=("${f#"$DESTDIR"}")
  done
  if [ ${#loose[@]} -gt 0 ]; then
    log "warning: app files others may read or their group may write: ${loose[*]}"
    log "         (they are root-equivalent and may hold secrets): chmod 0640 them"
  fi
  return 0
}

do_install() {
  local f
  local built=("$BIN_DIR/ondemand-helperd" "$BIN_DIR/ondemandctl")
  [ "$INSTALL_MODULE" = 0 ] || built+=("$MODULE_FILE")
  for f in "${built[@]}"; do
    [ -e "$f" ] || die "$f is not built: run make first"
  done
  put 0755 "$BIN_DIR/ondemand-helperd" "$SBINDIR/ondemand-helperd"
  put 0755 "$BIN_DIR/ondemandctl" "$BINDIR/ondemandctl"
  if [ "$INSTALL_MODULE" != 0 ]; then
    put 0644 "$MODULE_FILE" "$NGINX_MODULES_DIR/ngx_http_ondemand_module.so"
    install -d -m 0755 "$DESTDIR$NGINX_MODULES_AVAILABLE"
    printf 'load_module modules/ngx_http_ondemand_module.so;\n' \
      > "$DESTDIR$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf"
    if [ "$ENABLE_MODULE" != 0 ]; then
      install -d -m 0755 "$DESTDIR$NGINX_MODULES_ENABLED"
      ln -sfn "$NGINX_MODULES_AVAILABLE/mod-http-ondemand.conf" \
        "$DESTDIR$NGINX_MODULES_ENABLED/50-mod-http-ondemand.conf"
    fi
  fi
  put 0644 "$TOP/docs/man/ondemand-helperd.8" "$MANDIR/man8/ondemand-helperd.8" rewrite
  put 0644 "$TOP/docs/man/ondemandctl.1" "$MANDIR/man1/ondemandctl.1" rewrite
  put 0644 "$TOP/scripts/bash-completion/ondemandctl" "$BASH_COMPLETION_DIR/ondemandctl"
  for f in "${UNITS[@]}"; do put 0644 "$TOP/units/$f" "$SYSTEMD_UNIT_DIR/$f" rewrite; done
  put 0644 "$TOP/units/tmpfiles.d/ondemand.conf" "$TMPFILES_DIR/ondemand.conf"
  put 0644 "$TOP/units/50-ondemand.rules" "$POLKIT_RULES_DIR/50-ondemand.rules"
  put 0644 "$TOP/units/ondemand-helperd.service.d/root.conf" \
    "$DATADIR/ondemand-helperd.service.d/root.conf"
  for f in "${DOCS[@]}"; do
    [ -e "$TOP/$f" ] && put 0644 "$TOP/$f" "$DOCDIR/$(basename "$f")" rewrite
  done
  put 0644 "$TOP/units/examples/blog.conf" "$DOCDIR/examples/blog.conf"
  put 0644 "$TOP/units/examples/nginx-ondemand.conf" "$DOCDIR/examples/nginx-ondemand.conf" rewrite
  put 0644 "$TOP/units/examples/nginx-ondemand-wake.conf" "$DOCDIR/examples/nginx-ondemand-wake.conf"
  for d in prometheus.yml grafana-ondemand.json ondemand-metrics.schema.json; do
    put 0644 "$TOP/docs/examples/$d" "$DOCDIR/examples/$d"
  done
  install -d -m 0755 "$DESTDIR$SYSCONF_DIR"
  install -d -m 2750 "$DESTDIR$SYSCONF_DIR/apps"
  # helperd's settings: the operator's file is never overwritten
  if [ -e "$DESTDIR$SYSCONF_DIR/helperd.toml" ]; then
    log "$SYSCONF_DIR/helperd.toml exists: kept (the shipped default is $DOCDIR/examples/helperd.toml)"
  else
    put 0644 "$TOP/units/helperd.toml" "$SYSCONF_DIR/helperd.toml" rewrite
  fi
  put 0644 "$TOP/units/helperd.toml" "$DOCDIR/examples/helperd.toml"
  create_key
  create_user
  secure_apps_dir
  log "installed into ${DESTDIR:-/} (PREFIX=$PREFIX)"
  if [ -z "$DESTDIR" ]; then
    log "next: systemd-tmpfiles --create ondemand.conf && systemctl daemon-reload &&"
    log "      systemctl enable --now ondemand-helperd.socket"
    log "      (helperd runs as $HELPERD_USER; polkit rule in $POLKIT_RULES_DIR; root: see units.md)"
    if [ ! -x /usr/lib/polkit-1/polkitd ]; then
      log "warning: polkitd is not installed: systemd will refuse $HELPERD_USER's start/stop calls;"
      log "         apt install polkitd, or run helperd as root ($DATADIR/ondemand-helperd.service.d/root.conf)"
    fi
    log "      then describe apps in $SYSCONF_DIR/apps/ (see $DOCDIR/install.md) and"
    log "      systemctl try-reload-or-restart ondemand-helperd (helperd serves only those apps)"
  fi
}

do_uninstall() {
  local f
  while IFS= read -r f; do
    case $f in "$SYSCONF_DIR"/*) continue ;; esac # the operator's settings stay
    if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then
      rm -f "$DESTDIR$f"
    fi
  done < <(manifest)
  # our own directories, if now empty (never /etc/ondemand: it holds the operator's app files)
  for f in "$DOCDIR/examples" "$DOCDIR" "$DATADIR/ondemand-helperd.service.d" "$DATADIR" \
    "$TMPFILES_DIR"; do
    [ -d "$DESTDIR$f" ] && rmdir "$DESTDIR$f" 2>/dev/null || true
  done
  log "removed from ${DESTDIR:-/} (PREFIX=$PREFIX); $SYSCONF_DIR and the user $HELPERD_USER are left as they are"
  if [ -z "$DESTDIR" ]; then
    log "next: systemctl daemon-reload (and nginx -t && systemctl reload nginx)"
  fi
}

case "${1:-}" in
  install) do_install ;;
  uninstall) do_uninstall ;;
  list) manifest ;;
  *) sed -n '2,30p' "$0" >&2; exit 2 ;;
esac
