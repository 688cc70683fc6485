#!/usr/bin/env bash
# Set up everything autotag needs on a fresh machine; safe to run again (does only what is missing).
#   scripts/setup.sh         runtime: .venv with requirements.txt, FluidSynth and two General MIDI
#                            soundfonts (Debian; needs root or sudo), built-in demo data set
#   scripts/setup.sh --dev   also test tools (requirements-dev.txt), Debian's chromium for browser tests
#                            and Debian's postgresql for the sweep tests
set -euo pipefail

# Another apt or dpkg may hold their locks for minutes (a fresh cloud machine runs
# unattended-upgrades at boot): wait for it this long, in all.
APT_WAIT_S=600
APT_RETRY_S=5
APT_LOCKS=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
APT_SAID_WAIT=0

# Whether a process holds one of APT_LOCKS. They are fcntl locks on files only root may
# open, but /proc/locks lists every lock by device and inode for anyone.
apt_lock_held() {
  local lock dev ino id
  for lock in "${APT_LOCKS[@]}"; do
    read -r dev ino < <(stat -c '%d %i' "$lock" 2>/dev/null) || continue
    printf -v id '%02x:%02x:%s' $(( ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff) )) \
      $(( (dev & 0xff) | ((dev >> 12) & ~0xff) )) "$ino"
    grep -q " $id " /proc/locks 2>/dev/null && return 0
  done
  return 1
}

# Whether apt-get's error is about one of APT_LOCKS (their paths stay in any language).
apt_lock_error() {
  local lock
  for lock in "${APT_LOCKS[@]}"; do
    [[ $1 == *"$lock"* ]] && return 0
  done
  return 1
}

apt_say_wait() {
  if [[ $APT_SAID_WAIT == 0 ]]; then
    echo "setup: waiting up to $APT_WAIT_S s for another apt/dpkg to finish (unattended-upgrades at boot?)"
    APT_SAID_WAIT=1
  fi
}

# apt-get as root (directly, or through sudo), waiting for another apt or dpkg. apt waits for
# dpkg's frontend lock itself (DPkg::Lock::Timeout) but not for the lists lock of `update` nor
# the archives lock (apt 2.6), so a run refused for a lock is run again until the time is up.
apt_get() {
  local sudo=() deadline=$((SECONDS + APT_WAIT_S)) err
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  if apt_lock_held; then apt_say_wait; fi
  until err=$("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get -o "DPkg::Lock::Timeout=$((deadline > SECONDS ? deadline - SECONDS : 0))" "$@" 2>&1 >/dev/null); do
    if ! apt_lock_error "$err" || ((SECONDS >= deadline)); then
      echo "$err" >&2
      return 1
    fi
    apt_say_wait
    sleep "$APT_RETRY_S"
  done
  if [[ -n $err ]]; then echo "$err" >&2; fi  # warnings of a run that worked, as before
}

# Debian packages.
apt_install() {
  apt_get update -qq && apt_get install -y -qq "$@"
}

# Sourced (tests/test_setup_script.py): the functions above, nothing done.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PY="${PYTHON:-python3}"
REQ=requirements.txt
[[ $DEV == 1 ]] && REQ=requirements-dev.txt

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: autotag needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv

# Reinstall only when the requirement files changed since the last successful install.
STAMP=".venv/.installed-$(basename "$REQ" .txt)"
WANT="$(cat requirements.txt "$REQ" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  echo "setup: installing $REQ into .venv (a few minutes the first time)"
  # This machine's pip config lists local mirrors that lack some packages; pip warns once per
  # package about each. Those lines are noise, every other message is kept.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # autotag itself, editable, so `python -m autotag` works from any folder.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$WANT" > "$STAMP"
  if [[ $DEV == 1 ]]; then  # the dev set includes the runtime set: no second install for the dashboard
    cat requirements.txt requirements.txt | sha256sum | cut -d' ' -f1 > .venv/.installed-requirements
  fi
fi

# `demo-data` renders the demo set's real instrument sounds with libfluidsynth: FluidR3_GM for the
# set, TimGM6mb for a test set of sounds the model never heard. Without them it falls back to
# synthetic tones, so a failed install is a warning, not the end of set-up.
SF2=/usr/share/sounds/sf2
if ! { ldconfig -p | grep 'libfluidsynth\.so\.3' >/dev/null && [[ -f $SF2/FluidR3_GM.sf2 && -f $SF2/TimGM6mb.sf2 ]]; }; then
  echo "setup: installing Debian's libfluidsynth3, fluid-soundfont-gm and timgm6mb-soundfont (the demo set's instruments)"
  apt_install libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont \
    || echo "setup: could not install them; the demo set will be synthetic tones instead" >&2
fi

if [[ ! -f data/demo/tags.csv ]]; then
  echo "setup: generating the built-in demo data set in data/demo"
  rm -rf data/demo
  .venv/bin/python -m autotag demo-data data/demo --clips 300 --seed 0
elif grep -q '^Synthetic tones' data/demo/SOURCE.txt 2>/dev/null; then
  # Kept: runs may have trained on it. A new folder gets the real instruments.
  echo "setup: data/demo holds synthetic tones; for the real-instrument demo set, move it away" \
    "(mv data/demo data/demo-tones) and run this again"
fi

# The sweep tests run two workers against a real PostgreSQL server (Debian keeps its
# binaries in /usr/lib/postgresql/<version>/bin); the tests start and stop their own.
if [[ $DEV == 1 ]] && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  echo "setup: installing Debian's postgresql for the sweep tests (a server per test session)"
  apt_install postgresql \
    || echo "setup: could not install postgresql; the PostgreSQL sweep test will be skipped and say why" >&2
fi

# The README's HTTP examples call `autotag serve` with curl; its test runs them as written.
if [[ $DEV == 1 ]] && ! command -v curl >/dev/null; then
  echo "setup: installing Debian's curl for the README's serving examples"
  apt_install curl
fi

if [[ $DEV == 1 ]] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  echo "setup: installing Debian's chromium and chromium-driver for the browser tests"
  apt_install chromium chromium-driver
fi
