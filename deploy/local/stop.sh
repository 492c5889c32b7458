# Stopping a process started by services-up.sh or cluster-up.sh, by pid file only, never by
# name. Sourced by services-down.sh and deploy/cluster/cluster-down.sh, which define log() and
# GRACE_SECONDS first.

# alive PID: process exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# stop NAME PIDFILE PATTERN: PATTERN must occur in the process's command line, so a pid
# recycled by an unrelated process after a crash/reboot is never signalled.
stop() {
  local name="$1" pidfile="$2" pattern="$3" pid cmdline
  if [[ ! -f "$pidfile" ]]; then
    log "$name: not running (no pid file)"
    return 0
  fi
  pid="$(<"$pidfile")"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
    log "$name: not running (removing stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" != *"$pattern"* ]]; then
    log "$name: pid $pid is not $name ($cmdline); leaving it alone, removing pid file"
    rm -f "$pidfile"
    return 0
  fi

  log "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while alive "$pid" && ((waited < GRACE_SECONDS * 5)); do
    sleep 0.2
    waited=$((waited + 1))
  done
  if alive "$pid"; then
    log "$name: still running after ${GRACE_SECONDS}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    waited=0
    while alive "$pid" && ((waited < 50)); do
      sleep 0.2
      waited=$((waited + 1))
    done
    if alive "$pid"; then
      log "$name: pid $pid survived SIGKILL (stuck in the kernel?); keeping the pid file"
      return 1
    fi
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}
