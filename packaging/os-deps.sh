#!/usr/bin/env bash
# Installs the operating-system libraries the station needs on Debian or Ubuntu: what Qt loads to
# draw a window (X11/xcb, EGL, fonts) and what `python3 -m venv` needs. Installs only what is
# missing and says what it did; does nothing on a machine that already has everything.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
    echo "os-deps: no apt-get here; install Qt 6's X11/xcb, EGL and fontconfig libraries with your package manager." >&2
    exit 0
fi

wanted=(libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libfreetype6 libdbus-1-3
        libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
        libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxrender1 libxi6 libsm6)
# GLib's package was renamed in newer releases.
if apt-cache show libglib2.0-0t64 >/dev/null 2>&1; then wanted+=(libglib2.0-0t64); else wanted+=(libglib2.0-0); fi
python3 -c "import ensurepip" >/dev/null 2>&1 || wanted+=(python3-venv)

missing=()
for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "os-deps: all ${#wanted[@]} system libraries already installed"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "os-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "os-deps: installed ${#missing[@]} packages"
