# libdck.sh: RACK system calls for shell apps. POSIX sh + curl, nothing else.
#   . /opt/rack/dist/libdck/libdck.sh
# Uses RACK_URL, RACK_TOKEN, RACK_GID and RACK_PID, which dckinit gives every app, and
# RACK_CA (the CA file of an https kernel) when it gives one. RACK_URL may name several kernels
# over one store, comma-separated: a call goes to the first that takes the connection.
# Exit statuses: 0 ok; 1 the kernel refused (its message on stderr); 2 bad usage;
# 3 the kernel cannot be reached; 124 timed out (dck_wait, dck_recv).

_dck_check() {
  if [ -z "${RACK_URL:-}" ] || [ -z "${RACK_TOKEN:-}" ] || [ -z "${RACK_GID:-}" ]; then
    echo "libdck: RACK_URL, RACK_TOKEN and RACK_GID must be set (dckinit sets them in a RACK VM)" >&2
    return 2
  fi
}

_dck_int() { # NAME VALUE
  case "$2" in
    ''|*[!0-9]*) echo "libdck: $1 must be a non-negative integer, got '$2'" >&2; return 2 ;;
  esac
}

# _dck_curl ARGS...: curl, trusting the kernel's CA when RACK_CA names one (never --insecure).
_dck_curl() {
  if [ -n "${RACK_CA:-}" ]; then curl --cacert "$RACK_CA" "$@"; else curl "$@"; fi
}

# _dck_to URL ARGS...: curl to URL on each kernel of RACK_URL in turn, until one takes the
# connection. Only "could not connect" (curl's 6 and 7) moves on: past that the request may have
# been received, and sending it again elsewhere could do it twice.
_dck_to() {
  _dck_path=$1
  shift
  _dck_rest=$RACK_URL
  while :; do
    _dck_k=$(printf '%s' "${_dck_rest%%,*}" | tr -d ' ')
    _dck_curl "$@" "$_dck_k$_dck_path" && return 0
    _dck_rc=$?
    case "$_dck_rc:$_dck_rest" in
      6:*,* | 7:*,*) _dck_rest=${_dck_rest#*,} ;;
      *) return "$_dck_rc" ;;
    esac
  done
}

# _dck_call METHOD PATH [CURL ARGS...]: the body goes to stdout; the status decides the exit.
_dck_call() {
  _dck_m=$1 _dck_p=$2
  shift 2
  _dck_out=$(mktemp) || return 3
  _dck_code=$(_dck_to "$_dck_p" -sS -o "$_dck_out" -w '%{http_code}' -X "$_dck_m" \
    -H "Authorization: Bearer $RACK_TOKEN" "$@") || { rm -f "$_dck_out"; echo "libdck: cannot reach the kernel at $RACK_URL" >&2; return 3; }
  # A kernel that did not take the connection wrote 000 first: the status is the last three.
  _dck_code=${_dck_code#"${_dck_code%???}"}
  case "$_dck_code" in
    2??) cat "$_dck_out"; rm -f "$_dck_out"; return 0 ;;
    408) rm -f "$_dck_out"; return 124 ;;
    *) echo "libdck: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$_dck_out") (HTTP $_dck_code)" >&2; rm -f "$_dck_out"; return 1 ;;
  esac
}

# _dck_json_str VALUE: VALUE as a JSON string.
_dck_json_str() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS="\\n"} {print}' | sed 's/\\n$//')"
}

# _dck_field NAME: the first number or string value of "NAME" in the JSON on stdin.
_dck_field() {
  sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n 1
}

# dck_fork [COUNT] [NAME=VALUE ...]: forks COUNT children of this process; prints their PIDs.
dck_fork() {
  _dck_check || return
  _dck_n=1
  case "${1:-}" in *=*|'') ;; *) _dck_int COUNT "$1" || return; _dck_n=$1; shift ;; esac
  _dck_args=""
  for _dck_a in "$@"; do
    case "$_dck_a" in *=*) ;; *) echo "libdck: dck_fork args are NAME=VALUE, got '$_dck_a'" >&2; return 2 ;; esac
    _dck_args="$_dck_args${_dck_args:+,}$(_dck_json_str "${_dck_a%%=*}"):$(_dck_json_str "${_dck_a#*=}")"
  done
  _dck_call POST "/v1/groups/$RACK_GID/processes" -H 'Content-Type: application/json' \
    -d "{\"process\":{\"count\":$_dck_n,\"args\":{$_dck_args}}}" | tr '{' '\n' | sed -n 's/^"gid":"[^"]*","pid":\([0-9]*\).*/\1/p'
}

# dck_kill PID [TERM|KILL]: ends PID and its descendants.
dck_kill() {
  _dck_check || return
  _dck_int PID "${1:-}" || return
  _dck_call DELETE "/v1/groups/$RACK_GID/processes/$1?signal=${2:-TERM}" >/dev/null
}

# dck_wait [PID]: waits for a child (any when no PID); prints "PID STATUS CODE" and returns the
# child's exit code (128+N when killed by signal N).
dck_wait() {
  _dck_check || return
  _dck_q=""
  if [ -n "${1:-}" ]; then _dck_int PID "$1" || return; _dck_q="&pid=$1"; fi
  while :; do
    _dck_r=$(_dck_call GET "/v1/groups/$RACK_GID/processes/$RACK_PID/wait?timeout=300$_dck_q")
    _dck_rc=$?
    [ "$_dck_rc" -eq 124 ] && continue
    [ "$_dck_rc" -eq 0 ] || return "$_dck_rc"
    break
  done
  _dck_pid=$(printf '%s' "$_dck_r" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
  _dck_st=$(printf '%s' "$_dck_r" | _dck_field status)
  _dck_c=$(printf '%s' "$_dck_r" | sed -n 's/.*"code":\([0-9]*\).*/\1/p')
  _dck_sig=$(printf '%s' "$_dck_r" | _dck_field signal)
  echo "$_dck_pid $_dck_st ${_dck_c:-$_dck_sig}"
  case "$_dck_st" in
    exited) return "${_dck_c:-0}" ;;
    killed) case "$_dck_sig" in KILL) return 137 ;; TERM) return 143 ;; INT) return 130 ;; HUP) return 129 ;; *) return 137 ;; esac ;;
    *) return 125 ;;
  esac
}

# dck_send PID TEXT: sends TEXT (as a JSON string) to PID's mailbox.
dck_send() {
  _dck_check || return
  _dck_int PID "${1:-}" || return
  _dck_call POST "/v1/groups/$RACK_GID/processes/$1/messages" -H 'Content-Type: application/json' \
    -d "{\"message\":{\"data\":$(_dck_json_str "${2:-}")}}" >/dev/null
}

# dck_recv [TIMEOUT]: prints the oldest message's data (a string as is, else its JSON) and removes it.
dck_recv() {
  _dck_check || return
  _dck_r=$(_dck_call GET "/v1/groups/$RACK_GID/processes/$RACK_PID/messages?timeout=${1:-30}") || return
  _dck_seq=$(printf '%s' "$_dck_r" | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
  printf '%s' "$_dck_r" | sed 's/.*"data":\(.*\)}}$/\1/; s/^"\(.*\)"$/\1/; s/\\"/"/g; s/\\\\/\\/g'
  echo
  _dck_call DELETE "/v1/groups/$RACK_GID/processes/$RACK_PID/messages/$_dck_seq" >/dev/null
}

# dck_shm_get KEY: prints the value's JSON (null when absent).
dck_shm_get() {
  _dck_check || return
  # The answer is kept first: in a pipeline the call's failure would be lost behind sed's 0.
  _dck_v=$(_dck_call GET "/v1/groups/$RACK_GID/shm/$1") || return
  printf '%s\n' "$_dck_v" | sed 's/^{"value":\(.*\),"version":[0-9]*}$/\1/'
}

# dck_shm_set KEY JSON: sets KEY to a JSON value (quote strings: '"text"').
dck_shm_set() {
  _dck_check || return
  _dck_call PUT "/v1/groups/$RACK_GID/shm/$1" -H 'Content-Type: application/json' -d "{\"value\":${2:-null}}" >/dev/null
}

# dck_shm_incr KEY [BY]: adds BY (default 1) atomically; prints the new value.
dck_shm_incr() {
  _dck_check || return
  _dck_v=$(_dck_call POST "/v1/groups/$RACK_GID/shm/$1/incr" -H 'Content-Type: application/json' -d "{\"by\":${2:-1}}") || return
  printf '%s' "$_dck_v" | _dck_field value
}

# dck_pipe_write ID: copies stdin into pipe ID (or fifo:NAME) and closes this writer.
dck_pipe_write() {
  _dck_check || return
  _dck_call PUT "/v1/groups/$RACK_GID/pipes/$1" -H 'Content-Type: application/octet-stream' -T - >/dev/null
}

# dck_pipe_read ID: copies pipe ID (or fifo:NAME) to stdout until every writer is gone.
dck_pipe_read() {
  _dck_check || return
  _dck_to "/v1/groups/$RACK_GID/pipes/$1" -sS -f -N -H "Authorization: Bearer $RACK_TOKEN" || return 1
}

# dck_file_put PATH [FILE|-]: stores FILE (or stdin) in the group file system.
dck_file_put() {
  _dck_check || return
  _dck_call PUT "/v1/groups/$RACK_GID/files/$1" -H 'Content-Type: application/octet-stream' -T "${2:--}" >/dev/null
}

# dck_file_get PATH [FILE|-]: writes the file to FILE (or stdout).
dck_file_get() {
  _dck_check || return
  _dck_to "/v1/groups/$RACK_GID/files/$1" -sS -f -H "Authorization: Bearer $RACK_TOKEN" -o "${2:--}" || return 1
}

# dck_file_ls [PREFIX]: one path per line.
dck_file_ls() {
  _dck_check || return
  _dck_v=$(_dck_call GET "/v1/groups/$RACK_GID/files?prefix=${1:-}") || return
  printf '%s' "$_dck_v" | tr '{' '\n' | sed -n 's/^"path":"\([^"]*\)".*/\1/p'
}

# dck_exit CODE: reports CODE as this process's exit status and ends the shell.
dck_exit() {
  _dck_check || return
  _dck_int CODE "${1:-0}" || return
  _dck_call POST "/v1/groups/$RACK_GID/processes/$RACK_PID/exit" -H 'Content-Type: application/json' -d "{\"exit\":{\"code\":${1:-0}}}" >/dev/null
  exit "${1:-0}"
}
