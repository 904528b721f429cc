#!/usr/bin/env bash
# Checks the Debian package the way an administrator would use it, on this machine (as root,
# where no vapora package is installed): builds it with scripts/package-deb.sh (or takes the
# .deb given as $1), installs it with dpkg -i, checks what it installed, installs it again
# (the maintainer scripts are idempotent), removes it with dpkg -r and purges it with
# dpkg -P, and checks that no file of the package is left behind. The users the package
# created are deleted at the end, so the next run starts from the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "check-deb: FAILED: $*" >&2
  exit 1
}
step() { echo "check-deb: $*"; }

[[ "$(id -u)" == 0 ]] || fail "run as root (dpkg -i)"
if dpkg-query -W -f '${db:Status-Status}' vapora 2>/dev/null | grep -qv '^not-installed$'; then
  fail "a vapora package is installed already; this check would replace it"
fi

if [[ $# -gt 0 ]]; then
  deb="$1"
else
  step "building the package (scripts/package-deb.sh)"
  deb="$(scripts/package-deb.sh)"
fi
[[ -f "$deb" ]] || fail "no package at $deb"
step "checking $deb"

users_before=()
for user in vapora vapora-work; do
  getent passwd "$user" >/dev/null && users_before+=("$user")
done
groups_before=()
for group in vapora vapora-work; do
  getent group "$group" >/dev/null && groups_before+=("$group")
done

work="$(mktemp -d)"
daemon_pid=
cleanup() {
  # Whatever happened above: the daemon it started, the package and the users it created go.
  if [[ -n "$daemon_pid" ]]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if dpkg-query -W -f '${db:Status-Status}' vapora 2>/dev/null | grep -qv '^not-installed$'; then
    dpkg -P vapora >/dev/null 2>&1 || true
  fi
  for user in vapora-work vapora; do
    if ! printf '%s\n' "${users_before[@]}" | grep -qx "$user" && getent passwd "$user" >/dev/null; then
      userdel "$user" || true
    fi
  done
  for group in vapora-work vapora; do
    if ! printf '%s\n' "${groups_before[@]}" | grep -qx "$group" && getent group "$group" >/dev/null; then
      groupdel "$group" || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# What the package holds (paths without the leading "."), and which of them exist before.
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^\.\?$' \
  | sort > "$work/contents"
while read -r path; do
  if [[ -e "$path" || -L "$path" ]]; then
    [[ -d "$path" && ! -L "$path" ]] || fail "$path exists before the package is installed"
    echo "$path" >> "$work/existed"
  fi
done < "$work/contents"
touch "$work/existed"

step "dpkg -i"
dpkg -i "$deb" > "$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }

# The binary.
[[ -x /usr/bin/vapora ]] || fail "no /usr/bin/vapora"
version="$(dpkg-deb -f "$deb" Version)"
said="$(/usr/bin/vapora --version)" || fail "vapora --version"
[[ "$said" == "vapora ${version%-*}" ]] || fail "vapora --version says '$said', the package is $version"

# The man pages: found by man, and rendered without a warning.
[[ "$(man -w vapora)" == /usr/share/man/man1/vapora.1.gz ]] || fail "man -w vapora: $(man -w vapora 2>&1)"
[[ "$(man -w vapora-task-add)" == /usr/share/man/man1/vapora-task-add.1.gz ]] \
  || fail "man -w vapora-task-add"
rendered="$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings=w vapora 2>&1)" || fail "man vapora"
grep -q '^EXIT STATUS' <<<"$rendered" || fail "man vapora has no EXIT STATUS section"
! grep -qi warning <<<"$rendered" || fail "man vapora: $(grep -i warning <<<"$rendered")"

# The completions, where bash-completion, zsh and fish look for them.
for file in /usr/share/bash-completion/completions/vapora /usr/share/zsh/vendor-completions/_vapora \
  /usr/share/fish/vendor_completions.d/vapora.fish; do
  [[ -s "$file" ]] || fail "$file is missing"
done
bash -c 'source /usr/share/bash-completion/completions/vapora && complete -p vapora' >/dev/null \
  || fail "the bash completion does not register itself"

# The docs.
for file in README.md SECURITY.md copyright; do
  [[ -s "/usr/share/doc/vapora/$file" ]] || fail "/usr/share/doc/vapora/$file is missing"
done

# The users the system units run as; a system account without a login shell.
for user in vapora vapora-work; do
  entry="$(getent passwd "$user")" || fail "no user $user"
  [[ "$(cut -d: -f3 <<<"$entry")" -lt 1000 ]] || fail "$user is not a system user: $entry"
  [[ "$(cut -d: -f7 <<<"$entry")" == */nologin ]] || fail "$user can log in: $entry"
  [[ "$(id -gn "$user")" == "$user" ]] || fail "$user's group is $(id -gn "$user")"
done
id -nG vapora-work | tr ' ' '\n' | grep -qx vapora || fail "vapora-work is not in the vapora group"

# The units pass systemd-analyze verify as installed (a template through an instance of it;
# the man page named in Documentation= is found too). Nothing is enabled.
system=/usr/lib/systemd/system
user_units=/usr/lib/systemd/user
for unit in "$system"/vapora{.service,.socket,-work@.service} "$user_units"/vapora{.service,.socket,-work@.service}; do
  [[ -f "$unit" ]] || fail "$unit is missing"
done
mkdir -p "$work/system" "$work/user" "$work/runtime"
cp "$system/vapora-work@.service" "$work/system/vapora-work@check.service"
cp "$user_units/vapora-work@.service" "$work/user/vapora-work@check.service"
systemd-analyze verify "$system/vapora.service" "$system/vapora.socket" \
  "$work/system/vapora-work@check.service" || fail "systemd-analyze verify (system units)"
XDG_RUNTIME_DIR="$work/runtime" systemd-analyze --user verify "$user_units/vapora.service" \
  "$user_units/vapora.socket" "$work/user/vapora-work@check.service" \
  || fail "systemd-analyze --user verify (user units)"
enabled="$(find /etc/systemd -name 'vapora*' 2>/dev/null)"
[[ -z "$enabled" ]] || fail "installing enabled units: $enabled"

# The system units' users work together: the daemon runs vapora.service's command line as
# its User= (with the socket vapora.socket would hand it), and a worker runs
# vapora-work@.service's as its User= with its SupplementaryGroups= and Environment=. A task
# runs as vapora-work; a user outside the vapora group is refused.
step "the system units' users, as the units run them"
unit_value() { sed -n "s/^$2=//p" "$1" | head -n 1; }
service="$system/vapora.service" worker="$system/vapora-work@.service"
socket_dir="$work/run" data_dir="$work/data"
chmod 711 "$work"
mkdir -m 755 "$socket_dir"
mkdir -m 700 "$data_dir"
chown "$(unit_value "$service" User):$(unit_value "$service" Group)" "$socket_dir" "$data_dir"
read -r -a daemon_command <<<"$(unit_value "$service" ExecStart | sed "s|/var/lib/vapora|$data_dir|")"
setpriv --reuid "$(unit_value "$service" User)" --regid "$(unit_value "$service" Group)" \
  --init-groups "${daemon_command[@]}" --socket "$socket_dir/vapora.sock" --socket-mode 660 \
  > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [[ -S "$socket_dir/vapora.sock" ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon did not start: $(cat "$work/daemon.log")"
  sleep 0.1
done
[[ -S "$socket_dir/vapora.sock" ]] || fail "the daemon did not listen within 10 s"
read -r -a worker_env <<<"$(unit_value "$worker" Environment | sed "s|/run/vapora/vapora.sock|$socket_dir/vapora.sock|")"
read -r -a worker_command <<<"$(unit_value "$worker" ExecStart | sed 's/%i/check/')"
as_worker() {
  setpriv --reuid "$(unit_value "$worker" User)" --regid "$(unit_value "$worker" Group)" \
    --groups "$(unit_value "$worker" SupplementaryGroups)" \
    env -i PATH=/usr/bin:/bin "${worker_env[@]}" "$@"
}
as_worker /usr/bin/vapora task add -q --cwd / -- id -un >/dev/null || fail "vapora-work cannot add a task"
as_worker "${worker_command[@]}" --exit-when-empty 2>/dev/null || fail "the worker failed"
ran_as="$(as_worker /usr/bin/vapora task show 1 --json | sed -n 's/.*"result":"\([^"]*\)".*/\1/p')"
[[ "$ran_as" == vapora-work ]] || fail "the task ran as '$ran_as', not vapora-work"
if setpriv --reuid nobody --regid nogroup --clear-groups env -i "${worker_env[@]}" \
  /usr/bin/vapora ping >/dev/null 2>&1; then
  fail "a user outside the vapora group reached the daemon"
fi
as_worker /usr/bin/vapora shutdown -q || fail "vapora shutdown"
wait "$daemon_pid" || fail "the daemon exited with $?: $(cat "$work/daemon.log")"

step "dpkg -i again (over itself)"
dpkg -i "$deb" > "$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i again"; }

# What dpkg says it installed is what the package holds, and all of it is there.
dpkg -L vapora | grep -v '^/\.$' | sort > "$work/installed"
diff "$work/contents" "$work/installed" > "$work/diff" || fail "dpkg -L differs from the package: $(cat "$work/diff")"
while read -r path; do
  [[ -e "$path" ]] || fail "$path was not installed"
done < "$work/installed"

step "dpkg -r, dpkg -P"
dpkg -r vapora > "$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r"; }
left="$(while read -r path; do
  if [[ -e "$path" || -L "$path" ]] && ! grep -qxF "$path" "$work/existed"; then echo "$path"; fi
done < "$work/installed")"
[[ -z "$left" ]] || fail "left behind by dpkg -r: $left"
dpkg -P vapora > "$work/dpkg-p.log" 2>&1 || { cat "$work/dpkg-p.log" >&2; fail "dpkg -P"; }
dpkg-query -W vapora >/dev/null 2>&1 && fail "dpkg still knows vapora after dpkg -P"
leftover="$(ls /var/lib/dpkg/info/vapora.* 2>/dev/null || true)"
[[ -z "$leftover" ]] || fail "left behind by dpkg -P: $leftover"

step "ok: $(wc -l < "$work/installed") paths installed, all removed"
