#!/bin/sh
# Installs bbagent on Linux or macOS from a release directory made by scripts/release/make-release: picks the
# executable for this OS and CPU, downloads it and SHA256SUMS from the base URL (curl or wget), checks the SHA-256
# (sha256sum or shasum -a 256), and installs it; then, if asked, creates a worker and installs it as a service.
#
#   curl -fsSL https://releases.example.org/bbagent/install.sh | sudo sh -s -- \
#     --base-url https://releases.example.org/bbagent --user bbagent \
#     --basedir /var/lib/bbagent/w1 --service -- buildmaster.example.org:9989 w1 PASSWORD
#
# Run `sh install.sh --help` for the options. POSIX sh; no bash needed.
set -eu

BASE_URL='' # make-release --base-url fills this in; else --base-url is required
PREFIX=/usr/local/bin
NAME=bbagent
TARGET=
BASEDIR=
SVC_USER=
SERVICE=0
SERVICE_ARGS=
WORKER=0

usage() {
  cat <<'EOF'
Usage: install.sh [options] [-- MASTERHOST:PORT WORKERNAME PASSWORD [create-worker options]]

Downloads the bbagent executable for this machine from a release directory, checks it against SHA256SUMS and
installs it as PREFIX/bbagent. Arguments after -- run `bbagent create-worker BASEDIR ARGS...` after installing.

Options:
  --base-url URL       where the release directory is served (http:// or https://)
  --prefix DIR         install directory (default: /usr/local/bin)
  --name NAME          name of the installed executable (default: bbagent)
  --target ID          skip detection: linux-x64, linux-arm64, darwin-x64 or darwin-arm64
  --basedir DIR        the worker's base directory, for -- (create-worker) and --service
  --user USER          the account the worker runs as: BASEDIR is given to it, and it is passed to
                       `bbagent service install --user USER` (it must exist; never root)
  --service            run `bbagent service install [--user USER] BASEDIR` at the end (needs root)
  --service-args ARGS  more options for `bbagent service install`, e.g. "--session agent" or "--no-start"
  -h, --help           show this help

Nothing is installed when the download does not match SHA256SUMS; the download is removed.
EOF
}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

need_value() {
  [ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
  case $1 in
    --base-url) need_value "$1" $#; BASE_URL=$2; shift 2 ;;
    --base-url=*) BASE_URL=${1#*=}; shift ;;
    --prefix) need_value "$1" $#; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --name) need_value "$1" $#; NAME=$2; shift 2 ;;
    --name=*) NAME=${1#*=}; shift ;;
    --target) need_value "$1" $#; TARGET=$2; shift 2 ;;
    --target=*) TARGET=${1#*=}; shift ;;
    --basedir) need_value "$1" $#; BASEDIR=$2; shift 2 ;;
    --basedir=*) BASEDIR=${1#*=}; shift ;;
    --user) need_value "$1" $#; SVC_USER=$2; shift 2 ;;
    --user=*) SVC_USER=${1#*=}; shift ;;
    --service) SERVICE=1; shift ;;
    --service-args) need_value "$1" $#; SERVICE_ARGS=$2; shift 2 ;;
    --service-args=*) SERVICE_ARGS=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    --) WORKER=1; shift; break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- check the arguments before downloading anything
case $BASE_URL in
  http://?* | https://?*) BASE_URL=${BASE_URL%/} ;;
  '') die 'no --base-url: give the URL the release directory is served at' ;;
  *) die "--base-url '$BASE_URL': expected an http:// or https:// URL" ;;
esac
case $NAME in '' | */*) die "--name '$NAME': expected a file name" ;; esac
if [ "$WORKER" = 1 ] || [ "$SERVICE" = 1 ]; then
  [ -n "$BASEDIR" ] || die '-- (create-worker) and --service need --basedir DIR'
fi
if [ "$WORKER" = 1 ] && [ $# -eq 0 ]; then
  die '-- needs the create-worker arguments: MASTERHOST:PORT WORKERNAME PASSWORD'
fi
if [ -n "$SVC_USER" ]; then
  [ "$SVC_USER" != root ] || die '--user root: the worker runs whatever the master sends; use a dedicated account'
  id "$SVC_USER" >/dev/null 2>&1 || die "--user $SVC_USER: no such account (create it first, e.g. useradd --system --create-home --home-dir /var/lib/bbagent $SVC_USER)"
fi

if [ -z "$TARGET" ]; then
  os=$(uname -s)
  arch=$(uname -m)
  case $os in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "no bbagent executable for the OS '$os' (Windows: use install.ps1)" ;;
  esac
  case $arch in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no bbagent executable for the CPU '$arch' (there are x86_64 and arm64 ones)" ;;
  esac
  # A shell under Rosetta reports x86_64 on Apple Silicon: take the native executable.
  if [ "$os" = darwin ] && [ "$arch" = x64 ] && [ "$(sysctl -n hw.optional.arm64 2>/dev/null || true)" = 1 ]; then arch=arm64; fi
  TARGET=$os-$arch
fi
case $TARGET in
  linux-x64 | linux-arm64 | darwin-x64 | darwin-arm64) FILE=bbagent-$TARGET ;;
  *) die "--target '$TARGET': expected linux-x64, linux-arm64, darwin-x64 or darwin-arm64" ;;
esac

# --- tools
if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 2 --connect-timeout 20 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -T 20 -t 3 -O "$2" "$1"; }
else
  die 'neither curl nor wget is installed: install one of them'
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  die 'neither sha256sum nor shasum is installed: cannot check the download'
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bbagent-install.XXXXXX") || die 'cannot create a temporary directory'
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- download and check
fetch "$BASE_URL/SHA256SUMS" "$TMP/SHA256SUMS" || die "cannot download $BASE_URL/SHA256SUMS: is --base-url right and the server reachable?"
EXPECTED=$(awk -v f="$FILE" '$2 == f || $2 == "*" f { print $1; exit }' "$TMP/SHA256SUMS")
case $EXPECTED in
  '') die "$BASE_URL/SHA256SUMS has no line for $FILE: this release has no executable for $TARGET" ;;
  *[!0-9a-f]*) die "$BASE_URL/SHA256SUMS: the line for $FILE is not a SHA-256 ('$EXPECTED')" ;;
esac
[ ${#EXPECTED} -eq 64 ] || die "$BASE_URL/SHA256SUMS: the line for $FILE is not a SHA-256 ('$EXPECTED')"
printf 'install.sh: downloading %s\n' "$BASE_URL/$FILE" >&2
fetch "$BASE_URL/$FILE" "$TMP/$FILE" || die "cannot download $BASE_URL/$FILE"
ACTUAL=$(sha256 "$TMP/$FILE")
if [ "$ACTUAL" != "$EXPECTED" ]; then
  rm -f "$TMP/$FILE"
  die "checksum mismatch for $FILE: SHA256SUMS says $EXPECTED, the download is $ACTUAL. The download was removed and nothing was installed."
fi

# --- install: copied next to its place, run once there, then renamed over it (a running bbagent keeps its file)
mkdir -p "$PREFIX" 2>/dev/null || die "cannot create $PREFIX: run as root (sudo sh ...) or choose --prefix"
[ -w "$PREFIX" ] || die "cannot write to $PREFIX: run as root (sudo sh ...) or choose --prefix"
DEST=$PREFIX/$NAME
NEW=$PREFIX/.$NAME.new.$$
trap 'rm -rf "$TMP" "$NEW"' EXIT
{ cp "$TMP/$FILE" "$NEW" && chmod 0755 "$NEW"; } || die "cannot write $NEW"
VERSION=$("$NEW" --version 2>&1) || die "the downloaded $FILE does not run on this machine ($NEW --version: $VERSION); nothing was installed"
mv -f "$NEW" "$DEST" || die "cannot replace $DEST"
printf 'install.sh: installed %s (%s, sha256 %s)\n' "$DEST" "$VERSION" "$EXPECTED" >&2

# --- worker and service
if [ "$WORKER" = 1 ]; then
  "$DEST" create-worker "$BASEDIR" "$@" || die "bbagent create-worker $BASEDIR failed (bbagent itself is installed: $DEST)"
  if [ -n "$SVC_USER" ]; then chown -R "$SVC_USER" "$BASEDIR" || die "cannot give $BASEDIR to $SVC_USER"; fi
fi
if [ "$SERVICE" = 1 ]; then
  # SERVICE_ARGS is split on blanks on purpose: it holds options.
  # shellcheck disable=SC2086
  "$DEST" service install ${SVC_USER:+--user "$SVC_USER"} $SERVICE_ARGS "$BASEDIR" || die "bbagent service install $BASEDIR failed (bbagent itself is installed: $DEST)"
fi
