#!/usr/bin/env bash
# Builds the frozen one-folder program (PyInstaller) and smoke-tests what it built:
#   build/frozen/dist/inspection-station/inspection-station   (run it from anywhere; copy the whole folder)
# The smoke test runs the frozen program, not the sources: its version, 50 headless frames of the
# simulated line, `doctor`, and the window (offscreen) up to READY=1 and a WATCHDOG=1 on a notify socket.
# Needs the `freeze` extra in the venv:  .venv/bin/pip install -e '.[freeze]'
# Usage: packaging/build-frozen.sh [--no-build]     (--no-build: only smoke-test an existing build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=build/frozen
APP=$OUT/dist/inspection-station
EXE=$APP/inspection-station

say() { printf 'build-frozen: %s\n' "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

build=1
[ "${1:-}" = "--no-build" ] && build=0

if [ $build -eq 1 ]; then
    "$PY" -m PyInstaller --version >/dev/null 2>&1 \
        || fail "PyInstaller is not installed in $PY's environment: .venv/bin/pip install -e '.[freeze]'"
    say "building with PyInstaller $("$PY" -m PyInstaller --version) (torch makes this take minutes)"
    start=$(date +%s)
    "$PY" -m PyInstaller --noconfirm --clean --log-level ERROR \
        --distpath "$OUT/dist" --workpath "$OUT/work" packaging/inspection-station.spec
    say "built in $(( $(date +%s) - start )) s"
fi
[ -x "$EXE" ] || fail "$EXE does not exist; build it first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"  # the frozen program must not lean on the source tree
export QT_QPA_PLATFORM=offscreen

say "smoke test 1/4: version"
"$OLDPWD/$EXE" --version | tee "$tmp/version"
grep -q '^inspection-station [0-9]' "$tmp/version" || fail "no version printed"

say "smoke test 2/4: 50 headless frames of the simulated line"
model=()
if [ ! -f "$OLDPWD/$APP/_internal/resources/builtin_detector.json" ]; then
    # No built-in model in resources/ yet: a tiny torch.export detector stands in, so the frozen
    # torch still loads and runs a model on every frame.
    say "no built-in model in this build: a stand-in torch.export model is used for the run"
    "$OLDPWD/$PY" - "$tmp/stand-in.pt2" <<'EOF'
import json, sys, torch
from torch import nn

class StandIn(nn.Module):
    """(N, 1, 6): one box (x0 y0 x1 y1 score class) whose score is the image's mean level."""
    def forward(self, x):
        s = x.mean(dim=(1, 2, 3)).clamp(0, 1)
        c = torch.full_like(s, 8.0)
        return torch.stack([c, c, c * 5, c * 5, s, torch.zeros_like(s)], dim=1).unsqueeze(1)

ep = torch.export.export(StandIn().eval(), (torch.zeros(1, 3, 64, 64),))
torch.export.save(ep, sys.argv[1], extra_files={"config.txt": json.dumps({"names": ["defect"]})})
EOF
    model=(--model "$tmp/stand-in.pt2")
fi
"$OLDPWD/$EXE" run --headless --source 'sim://?seed=1' --frames 50 --data-dir "$tmp/data" "${model[@]}" \
    --jsonl "$tmp/frames.jsonl" | tee "$tmp/summary"
grep -qE '"frames": ?50' "$tmp/summary" || fail "the headless run did not process 50 frames"
[ "$(grep -cE '"type": ?"frame"' "$tmp/frames.jsonl")" -eq 50 ] || fail "not 50 frame records"

say "smoke test 3/4: doctor and a report"
"$OLDPWD/$EXE" doctor --data-dir "$tmp/data" --min-free-gb 0 | tee "$tmp/doctor" || true
grep -q '^OK    Qt platform\|^WARN  Qt platform' "$tmp/doctor" || fail "Qt does not start in the frozen build"
grep -q '^FAIL' "$tmp/doctor" && fail "doctor reports a failure in the frozen build"
# A report from the shipped templates and stylesheet (resources/reports, collected as data by the spec).
"$OLDPWD/$EXE" audit export --data-dir "$tmp/data" --out "$tmp/audit.html" || fail "the audit report was not written"
grep -q '<style>' "$tmp/audit.html" && grep -q 'Audit trail' "$tmp/audit.html" \
    || fail "the audit report lacks its template or stylesheet"

say "smoke test 4/4: the window, offscreen, up to READY=1 and WATCHDOG=1"
"$OLDPWD/$PY" - "$OLDPWD/$EXE" "$tmp" <<'EOF'
import os, socket, subprocess, sys, time
exe, tmp = sys.argv[1], sys.argv[2]
path = os.path.join(tmp, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(1.0)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000", QT_QPA_PLATFORM="offscreen")
p = subprocess.Popen([exe, "gui", "--data-dir", os.path.join(tmp, "data"),
                      "--source", "sim://?seed=1&width=320&height=256"], env=env)
got, t0 = [], time.monotonic()
try:
    while time.monotonic() - t0 < 60 and not ("READY=1" in got and "WATCHDOG=1" in got):
        if p.poll() is not None:
            sys.exit(f"the window exited with status {p.returncode}")
        try:
            got += s.recv(4096).decode().split("\n")
        except TimeoutError:
            pass
finally:
    p.terminate()
    p.wait(10)
if not ("READY=1" in got and "WATCHDOG=1" in got):
    sys.exit(f"no READY=1 and WATCHDOG=1 within 60 s (got {got})")
print(f"window up: READY=1 after {time.monotonic() - t0:.1f} s, then WATCHDOG=1")
EOF

cd "$OLDPWD"
say "all smoke tests passed: $(du -sh "$APP" | cut -f1) in $APP ($(find "$APP" -type f | wc -l) files)"
