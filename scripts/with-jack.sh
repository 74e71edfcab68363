#!/usr/bin/env bash
# Runs CMD... against a private JACK server in dummy mode (no sound card needed) and always stops
# the server afterwards, whatever CMD does.
#
#   scripts/with-jack.sh cargo test --features jack --test jack_loopback -- --nocapture
#
# The server gets a unique name (aria-<pid>) exported as JACK_DEFAULT_SERVER, so several runs on
# one machine do not share a graph and CMD's JACK clients find this server without flags.
# Settings: 48 kHz, 64-frame periods (1.33 ms: midir's JACK output adds up to one period of
# jitter), synchronous mode; override with JACK_RATE / JACK_PERIOD / JACK_ASYNC=1. The server
# log goes to $JACK_LOG (default: a temp file, printed when the server fails to start).
# Exit status: CMD's, or 97 when the server does not come up within 10 s.
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

export JACK_DEFAULT_SERVER="${JACK_DEFAULT_SERVER:-aria-$$}"
# No D-Bus device reservation: the dummy driver owns no device, and containers have no session bus.
export JACK_NO_AUDIO_RESERVATION=1
rate="${JACK_RATE:-48000}"
period="${JACK_PERIOD:-64}"
# Synchronous mode (-S): the server waits for every client each cycle. In the default
# asynchronous mode a client that misses a cycle (frequent for a non-real-time server on a busy
# machine: 100-300 xruns in 8 s here) loses that period's MIDI: 1-5 of 418 loopback messages.
# JACK_ASYNC=1 restores the default to test that case.
sync="-S"; [ -n "${JACK_ASYNC:-}" ] && sync=""
log="${JACK_LOG:-$(mktemp -t jackd-XXXXXX.log)}"

# JACK keeps at most 8 servers in a shared-memory registry (/dev/shm/jack-shm-registry). A server
# killed with SIGKILL (the server-restart test does it on purpose; so does an interrupted run)
# leaves its slot behind, and after 8 such slots every new server fails with "Too many servers
# already active". When no jackd runs at all, every slot is stale: clear our user's JACK segments.
if ! pgrep -x jackd >/dev/null 2>&1 && ! pgrep -x jackdbus >/dev/null 2>&1; then
  find /dev/shm -maxdepth 1 \( -name 'jack-*' -o -name 'jack_*' -o -name 'sem.jack*' \) \
    -user "$(id -u)" -delete 2>/dev/null
fi

# -c s: the system clock source; HPET is absent in most VMs and containers.
jackd --no-realtime $sync -n "$JACK_DEFAULT_SERVER" -c s -d dummy -r "$rate" -p "$period" >"$log" 2>&1 &
jack_pid=$!
# CMD may stop the server itself (to test port loss) by this pid.
export WITH_JACK_PID="$jack_pid"

stop_server() {
  if kill -0 "$jack_pid" 2>/dev/null; then
    kill -TERM "$jack_pid" 2>/dev/null
    # jackd exits within ~100 ms on SIGTERM; escalate after 5 s so a wedged server never outlives us.
    for _ in $(seq 50); do
      kill -0 "$jack_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$jack_pid" 2>/dev/null
    wait "$jack_pid" 2>/dev/null
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

if ! jack_wait -s "$JACK_DEFAULT_SERVER" -w -t 10 >/dev/null 2>&1 || ! kill -0 "$jack_pid" 2>/dev/null; then
  echo "with-jack: jackd did not start (server $JACK_DEFAULT_SERVER); its log ($log):" >&2
  cat "$log" >&2
  exit 97
fi
echo "with-jack: jackd up (server $JACK_DEFAULT_SERVER, dummy, ${rate} Hz, ${period} frames, log $log)" >&2

"$@"
status=$?
exit "$status"
