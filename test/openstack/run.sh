#!/bin/bash
# npm run test:openstack: starts the OpenStack fixture (installing it when missing), runs the
# suite against it, and stops every service it started, whatever the outcome. A fixture that was
# already running is used and left running (for quick iterations: fixture/up.sh, then this).
#   test/openstack/run.sh [vitest args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
FIXTURE=test/openstack/fixture
. "$FIXTURE/lib.sh"

already=
for f in "$RUN"/*.pid; do [ -e "$f" ] && running "$(basename "$f" .pid)" && already=1 && break; done
if [ -z "$already" ]; then
  trap '"$FIXTURE/down.sh"' EXIT
fi
env_file=$("$FIXTURE/up.sh" | tail -n 1)
. "$env_file"
say "running the OpenStack suite"
npx vitest run --config test/openstack/vitest.config.ts "$@"
