#!/bin/sh
# Agent Sandbox entrypoint, run by tini from the read-only bundle at /mnt/agentsandbox
# (behaviour.md §17). POSIX sh only: it must work with dash, bash and busybox ash.
#
# * idle image (marker file or AGENT_SANDBOX_IS_IDLE_IMAGE=true): just sleep;
# * otherwise, as root: create the unprivileged sandbox user (home 755, passwordless
#   sudo when sudo exists) and persist the image's ENV for login shells, so that
#   `bash -l` keeps the image's PATH and friends;
# * exec envd (listen address from AGENT_SANDBOX_ENVD_LISTEN, default 0.0.0.0:49983;
#   extra flags from AGENT_SANDBOX_ENVD_FLAGS).
set -u

if [ -e /etc/agent_sandbox_is_idle_image ] || [ "${AGENT_SANDBOX_IS_IDLE_IMAGE:-}" = "true" ]; then
  exec sleep infinity
fi

BUNDLE="$(cd "$(dirname "$0")" && pwd -P)"
SANDBOX_USER="${AGENT_SANDBOX_ENVD_DEFAULT_USER:-user}"
SANDBOX_HOME="/home/$SANDBOX_USER"

user_exists() {
  grep -q "^$1:" /etc/passwd 2>/dev/null
}

create_user() {
  user_shell=/bin/sh
  [ -x /bin/bash ] && user_shell=/bin/bash
  if command -v useradd >/dev/null 2>&1; then
    useradd --create-home --home-dir "$SANDBOX_HOME" --shell "$user_shell" "$SANDBOX_USER" 2>/dev/null
  elif command -v adduser >/dev/null 2>&1; then
    adduser -D -h "$SANDBOX_HOME" -s "$user_shell" "$SANDBOX_USER" 2>/dev/null
  fi
  if ! user_exists "$SANDBOX_USER"; then
    uid=1000
    while grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd 2>/dev/null; do uid=$((uid + 1)); done
    echo "$SANDBOX_USER:x:$uid:" >> /etc/group
    echo "$SANDBOX_USER:x:$uid:$uid::$SANDBOX_HOME:$user_shell" >> /etc/passwd
  fi
  mkdir -p "$SANDBOX_HOME"
  chown "$SANDBOX_USER:" "$SANDBOX_HOME" 2>/dev/null || chown "$SANDBOX_USER" "$SANDBOX_HOME" 2>/dev/null
  chmod 755 "$SANDBOX_HOME"
  if [ -d /etc/sudoers.d ]; then
    echo "$SANDBOX_USER ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/agent-sandbox-user
    chmod 440 /etc/sudoers.d/agent-sandbox-user
  fi
}

persist_image_env() {
  [ -d /etc/profile.d ] || mkdir -p /etc/profile.d 2>/dev/null || return 0
  # `export -p` prints every exported variable in a form the shell can read back.
  export -p | grep -v -E '^(export|declare -x) (HOME|PWD|OLDPWD|SHLVL|HOSTNAME|USER|LOGNAME|TERM|_|AGENT_SANDBOX_[A-Z_]*)(=|$)' \
    > /etc/profile.d/zzz-agent-sandbox-image-env.sh 2>/dev/null || true
}

if [ "$(id -u 2>/dev/null || echo 0)" = "0" ]; then
  user_exists "$SANDBOX_USER" || create_user
  persist_image_env
fi

# shellcheck disable=SC2086 # AGENT_SANDBOX_ENVD_FLAGS is a list of flags
exec "$BUNDLE/envd" ${AGENT_SANDBOX_ENVD_FLAGS:-}
