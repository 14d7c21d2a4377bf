# Shared by bin/run and bin/test. Sourced, not executed.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A Python >= 3.12: $MSC_PYTHON if set, else the first suitable one on PATH or under pyenv.
find_python() {
  local cand
  for cand in "${MSC_PYTHON:-}" python3.13 python3.12 python3 \
      "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
      /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 \
      /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    if "$cand" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$cand" 2>/dev/null || echo "$cand"
      return 0
    fi
  done
  die "msc-admin needs Python 3.12 or newer and none was found.
  Install one (e.g. 'pyenv install 3.13', or your distribution's python3.12/python3.13 package)
  or point MSC_PYTHON at it:  MSC_PYTHON=/path/to/python3.13 $0"
}

# Create .venv (if missing or too old) and install the locked requirements file named by $1.
ensure_venv() {
  local lock="requirements/$1.txt" stamp python sum
  if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    say "Removing .venv: its Python is older than 3.12"
    rm -rf .venv
  fi
  if [ ! -x .venv/bin/python ]; then
    python=$(find_python)
    say "Creating .venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv .venv
  fi
  sum=$(sha256sum "$lock" | cut -d' ' -f1)
  stamp=".venv/.installed-$1"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    say "Installing Python dependencies from $lock"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$lock"
    echo "$sum" > "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

# Install Debian packages that are missing. Root uses apt-get directly, others sudo.
ensure_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing Debian packages: ${missing[*]} (install them, or run as root)"
    sudo="sudo"
  fi
  say "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

free_port() {
  .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
