#!/usr/bin/env bash
# Installs the station on a Debian or Ubuntu line PC from this source tree:
#   1. the system libraries Qt needs (packaging/os-deps.sh)
#   2. the application in a virtual environment, PREFIX/venv (with CuPy when an NVIDIA driver works)
#   3. the desktop entry and the icon, so the station is in the desktop's menu
#   4. the systemd user service (kiosk: starts with the desktop session, restarted on crash or hang)
# and, with --kiosk-user, enables the service for that account and lets its systemd manager linger.
# Run as root for a system-wide install (/opt, /usr/share, /etc/systemd/user); as a plain user it
# installs into your home and enables the service for you.
set -euo pipefail

usage() {
    cat <<EOF
usage: packaging/install.sh [--prefix DIR] [--kiosk-user USER] [--no-service] [--dry-run]

  --prefix DIR        where the application goes (default: /opt/inspection-station as root,
                      ~/.local/opt/inspection-station otherwise); the venv is DIR/venv
  --kiosk-user USER   (root) start the station at USER's login: enable the service for USER,
                      enable lingering for USER, add USER to the 'video' group (cameras)
  --no-service        install the desktop entry but not the service
  --dry-run           print every step, change nothing
EOF
}

src=$(cd "$(dirname "$0")/.." && pwd)
root=0
[ "$(id -u)" -eq 0 ] && root=1
prefix=""
kiosk=""
service=1
dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --kiosk-user) [ $# -ge 2 ] || { usage >&2; exit 2; }; kiosk=$2; shift 2 ;;
        --kiosk-user=*) kiosk=${1#--kiosk-user=}; shift ;;
        --no-service) service=0; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ $root -eq 1 ]; then
    prefix=${prefix:-/opt/inspection-station}
    apps=/usr/share/applications
    icons=/usr/share/icons/hicolor
    units=/etc/systemd/user
else
    prefix=${prefix:-$HOME/.local/opt/inspection-station}
    data_home=${XDG_DATA_HOME:-$HOME/.local/share}
    apps=$data_home/applications
    icons=$data_home/icons/hicolor
    units=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
fi
case "$prefix" in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
if [ -n "$kiosk" ]; then
    [ $root -eq 1 ] || { echo "install: --kiosk-user needs root (sudo packaging/install.sh ...)" >&2; exit 2; }
    if [ $dry -eq 0 ] && ! id "$kiosk" >/dev/null 2>&1; then
        echo "install: there is no user $kiosk; create it first (adduser $kiosk)" >&2
        exit 2
    fi
fi

done_steps=()
step() { printf '\ninstall: %s\n' "$*"; }
run() {  # a command, shown; not run on --dry-run
    printf '+ %s\n' "$*"
    [ $dry -eq 1 ] || "$@"
}
render() {  # a packaging file with /opt/inspection-station replaced by the prefix
    local from=$1 to=$2
    printf '+ write %s (from packaging/%s, prefix %s)\n' "$to" "$(basename "$from")" "$prefix"
    [ $dry -eq 1 ] && return 0
    mkdir -p "$(dirname "$to")"
    sed "s|/opt/inspection-station|$prefix|g" "$from" > "$to.tmp"
    chmod 644 "$to.tmp"
    mv "$to.tmp" "$to"
}

[ $dry -eq 1 ] && echo "install: dry run, nothing is changed; these are the steps"
echo "install: from $src into $prefix$([ $root -eq 1 ] && echo ' (system-wide)' || echo " (for $(id -un))")"

step "1/4 system libraries for Qt"
if [ $root -eq 1 ] || command -v sudo >/dev/null 2>&1; then
    run "$src/packaging/os-deps.sh"
    done_steps+=("system libraries checked (packaging/os-deps.sh)")
else
    echo "install: not root and no sudo: skipping; run packaging/os-deps.sh as root"
fi

step "2/4 the application in $prefix/venv"
extra=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    extra="[gpu]"
    echo "install: nvidia-smi works: installing with the gpu extra (CuPy)"
else
    echo "install: no working NVIDIA driver (nvidia-smi): CPU only"
fi
python=${PYTHON:-python3}
run mkdir -p "$prefix"
run "$python" -m venv "$prefix/venv"
run "$prefix/venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0 "$src$extra"
run install -m 644 "$src/README.md" "$prefix/README.md"
done_steps+=("application in $prefix/venv${extra:+ with CuPy}: $prefix/venv/bin/inspection-station")

step "3/4 desktop entry and icon"
render "$src/packaging/inspection-station.desktop" "$apps/inspection-station.desktop"
run install -D -m 644 "$src/resources/inspection-station.svg" "$icons/scalable/apps/inspection-station.svg"
run install -D -m 644 "$src/resources/inspection-station.png" "$icons/256x256/apps/inspection-station.png"
if command -v update-desktop-database >/dev/null 2>&1; then run update-desktop-database -q "$apps"; fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then run gtk-update-icon-cache -q -t "$icons" || true; fi
done_steps+=("menu entry $apps/inspection-station.desktop, icon in $icons")

if [ $service -eq 1 ]; then
    step "4/4 systemd user service"
    unit=$units/inspection-station.service
    render "$src/packaging/inspection-station.service" "$unit"
    if [ -n "$kiosk" ]; then
        home=$(getent passwd "$kiosk" | cut -d: -f6 || true)
        home=${home:-/home/$kiosk}
        wants=$home/.config/systemd/user/graphical-session.target.wants
        # What `systemctl --user enable` does, done for another account without its session.
        run install -d -o "$kiosk" -g "$(id -gn "$kiosk" 2>/dev/null || echo "$kiosk")" "$home/.config" \
            "$home/.config/systemd" "$home/.config/systemd/user" "$wants"
        run ln -sfn "$unit" "$wants/inspection-station.service"
        run loginctl enable-linger "$kiosk"
        run usermod -aG video "$kiosk"
        done_steps+=("service $unit, enabled for $kiosk (starts at $kiosk's login), lingering on, $kiosk in 'video'")
    elif [ $root -eq 0 ]; then
        run systemctl --user daemon-reload
        run systemctl --user enable inspection-station.service
        done_steps+=("service $unit, enabled for $(id -un): starts at your next login")
    else
        done_steps+=("service $unit (not enabled: rerun with --kiosk-user USER, or as that user:"
                     "systemctl --user enable inspection-station.service)")
    fi
fi

printf '\ninstall: %s\n' "$([ $dry -eq 1 ] && echo 'would have done:' || echo 'done:')"
for s in "${done_steps[@]}"; do printf '  - %s\n' "$s"; done
cat <<EOF
install: check the machine with: $prefix/venv/bin/inspection-station doctor
install: logs of the service: journalctl --user -u inspection-station (as the kiosk user)
EOF
