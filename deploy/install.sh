#!/usr/bin/env bash
# deploy/install.sh - build lambdad and install it as a systemd service.
#
# Run it from a clone, as your own user; the steps that need root use sudo.
# Every command is printed before it runs. In order:
#   1. builds in --build-dir (default: build-release) with
#      meson --prefix=/usr/local --buildtype=release;
#   2. installs the binaries into /usr/local/bin (meson install): lambdad,
#      lambdad-archive, lambdad-devbroker, lambdad-gen;
#   3. installs deploy/lambdad.sysusers as
#      /usr/local/lib/sysusers.d/lambdad.conf and creates the lambdad user
#      and group with systemd-sysusers (nothing happens if they exist);
#   4. installs deploy/lambdad.service as
#      /usr/local/lib/systemd/system/lambdad.service;
#   5. copies deploy/lambdad.json to /etc/lambdad/lambdad.json, root:lambdad
#      mode 0640, ONLY if that file does not exist yet, makes the state
#      directory /var/lib/lambdad (lambdad, 0700) and checks the config;
#   6. runs systemctl daemon-reload.
# It never enables, starts or restarts the service, never deletes a file and
# never overwrites /etc/lambdad: running it again reinstalls the same files.
#
# Usage: deploy/install.sh [--build-dir DIR] [--no-build] [--destdir DIR]
#   --build-dir DIR  the meson build directory (default: <clone>/build-release)
#   --no-build       install what DIR holds as it is (configured for
#                    --prefix=/usr/local and built already)
#   --destdir DIR    install under DIR instead of / (packaging, tests): the
#                    user is created in DIR/etc/passwd, files keep your
#                    ownership, and systemctl is not run
set -euo pipefail

PREFIX=/usr/local   # deploy/lambdad.service's ExecStart names $PREFIX/bin/lambdad
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$REPO/build-release
BUILD=1
DESTDIR=

usage() { sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift 2 ;;
    --no-build)  BUILD=0; shift ;;
    --destdir)   DESTDIR=${2:?--destdir needs a directory}; shift 2 ;;
    -h|--help)   usage; exit 0 ;;
    *)           echo "install.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$DESTDIR" ]; then
  mkdir -p "$DESTDIR"
  DESTDIR=$(cd "$DESTDIR" && pwd)
fi

# Root only for what lands outside DESTDIR.
SUDO=
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi

run() { printf '+ %s\n' "$*"; "$@"; }

# 1. Build (as the calling user, so the build tree stays yours).
if [ "$BUILD" = 1 ]; then
  if [ -f "$BUILD_DIR/build.ninja" ]; then
    run meson setup --reconfigure "$BUILD_DIR" "$REPO" --prefix="$PREFIX" --buildtype=release
  else
    run meson setup "$BUILD_DIR" "$REPO" --prefix="$PREFIX" --buildtype=release
  fi
  run meson compile -C "$BUILD_DIR"
fi
# The unit runs $PREFIX/bin/lambdad: refuse a build that installs elsewhere.
installed=$(meson introspect --installed "$BUILD_DIR")
case $installed in
  *"\"$PREFIX/bin/lambdad\""*) ;;
  *) echo "install.sh: $BUILD_DIR does not install $PREFIX/bin/lambdad (configure it with" \
          "--prefix=$PREFIX, or drop --no-build)" >&2
     exit 1 ;;
esac

# 2. Binaries.
if [ -n "$DESTDIR" ]; then
  run meson install -C "$BUILD_DIR" --no-rebuild --destdir "$DESTDIR"
else
  run $SUDO meson install -C "$BUILD_DIR" --no-rebuild
fi

# 3. The lambdad user and group (see deploy/lambdad.sysusers for why not DynamicUser=).
sysusers_conf=$PREFIX/lib/sysusers.d/lambdad.conf
run $SUDO install -D -m 0644 "$REPO/deploy/lambdad.sysusers" "$DESTDIR$sysusers_conf"
if [ -n "$DESTDIR" ]; then
  run mkdir -p "$DESTDIR/etc"
  run systemd-sysusers --root="$DESTDIR" "$DESTDIR$sysusers_conf"
elif command -v systemd-sysusers >/dev/null; then
  run $SUDO systemd-sysusers "$sysusers_conf"
elif ! getent passwd lambdad >/dev/null; then
  run $SUDO useradd --system --user-group --home-dir /var/lib/lambdad --no-create-home \
      --shell /usr/sbin/nologin --comment "lambdad lambda-architecture daemon" lambdad
fi

# 4. The unit. Local changes belong in a drop-in (systemctl edit lambdad).
unit=$PREFIX/lib/systemd/system/lambdad.service
run $SUDO install -D -m 0644 "$REPO/deploy/lambdad.service" "$DESTDIR$unit"
if [ -z "$DESTDIR" ] && [ -e /etc/systemd/system/lambdad.service ]; then
  echo "note: /etc/systemd/system/lambdad.service exists and takes precedence over $unit"
fi

# 5. The config: never overwritten. Secrets in it stay readable by lambdad only.
conf=/etc/lambdad/lambdad.json
run $SUDO install -d -m 0755 "$DESTDIR/etc/lambdad"
if [ -e "$DESTDIR$conf" ]; then
  echo "kept the existing $conf (deploy/lambdad.json shows every key)"
else
  owner=()
  [ -n "$DESTDIR" ] || owner=(-o root -g lambdad)
  run $SUDO install -m 0640 "${owner[@]}" "$REPO/deploy/lambdad.json" "$DESTDIR$conf"
fi
# The state directory (archive.path's), as StateDirectory= makes it at every
# start: made now so that --check-config, which checks that the archive can
# be created there, passes before the first start.
state=/var/lib/lambdad
if [ -n "$DESTDIR" ]; then
  run install -d -m 0700 "$DESTDIR$state"
  # The config names the target's paths: check it with the state directory
  # mapped into DESTDIR.
  echo "checking $conf with $state/ read as $DESTDIR$state/:"
  check() { sed "s|\"$state/|\"$DESTDIR$state/|g" "$DESTDIR$conf" |
              "$DESTDIR$PREFIX/bin/lambdad" -c /dev/stdin --check-config; }
else
  run $SUDO install -d -m 0700 -o lambdad -g lambdad "$state"
  check() { run $SUDO "$PREFIX/bin/lambdad" -c "$conf" --check-config; }
fi
if ! check; then
  echo "warning: $conf has problems (above); fix them before starting lambdad" >&2
fi

# 6. Make systemd read the new unit (only where systemd runs).
if [ -n "$DESTDIR" ]; then
  echo "staged under $DESTDIR: systemctl not run"
elif [ -d /run/systemd/system ]; then
  run $SUDO systemctl daemon-reload
  if systemctl is-active --quiet lambdad; then
    echo "lambdad is running the previous binary: sudo systemctl restart lambdad"
  fi
else
  echo "systemd is not running here: skipped systemctl daemon-reload"
fi

cat <<EOF

lambdad is installed. Next:
  1. set kafka.brokers, streams and views in $conf, then check it:
       sudo -u lambdad $PREFIX/bin/lambdad -c $conf --check-config
  2. start it now and at every boot:
       sudo systemctl enable --now lambdad
  3. watch it:
       systemctl status lambdad
       journalctl -u lambdad -f
  4. after editing the config:
       sudo systemctl reload lambdad
EOF
