# shellcheck shell=bash
# Sourced by the scripts that install what they need from Debian's apt (services-up, cluster-up,
# images, test-containers), so a fresh machine gets every package the same way. The caller
# defines log and die.

# apt_install PKG...: install as root (sudo when not root); on a fresh machine the package lists
# may be empty or stale, so retry once after `apt-get update`.
apt_install() {
  local sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    sudo=sudo
  fi
  log "installing with apt: $*"
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
    log "install failed; running apt-get update and retrying"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  fi
}
