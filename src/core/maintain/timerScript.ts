/**
 * The script the maintenance timer runs on an etcd host (`k3s-etcd maintain --install-timer`).
 * Etcd hosts have no Node, so it is POSIX `sh` over the etcdctl this tool installs, and it takes
 * every value from its environment (the unit's EnvironmentFile, written by `timer.ts` from the
 * inventory after validation): nothing of the inventory is pasted into this text.
 *
 * Its decisions are rule.ts's, with the shares in thousandths: a member needs defragmentation
 * when its file is over QUOTA_PERMILLE of its quota, or more than FREE_PERMILLE of it is free
 * and it is over MIN_DB_BYTES; alarms are disarmed only when every member is under
 * QUOTA_PERMILLE of its quota. `--decide DB IN_USE QUOTA` prints the verdict alone, so a test
 * holds the two to the same cases.
 *
 * One run: a lock on this host (a second run while one is going exits at once); only the host
 * whose member leads acts (the others write a "skipped" report), so two hosts never defragment
 * at once without any write being needed (NOSPACE refuses writes); every member must answer
 * (a NOSPACE alarm does not count against it, CORRUPT refuses); the history is compacted unless
 * K3s's API server did it recently (compact_rev_key), and only when a member needs
 * defragmentation or NOSPACE is armed; followers are defragmented one at a time, each checked
 * healthy and caught up before the next, the leader last, and the run stops if the leadership
 * moves; NOSPACE is disarmed with headroom. The report goes to REPORTS_DIR (JSON, 0600, the
 * newest KEEP_REPORTS kept) and, from the acting host, to the key RECORD_KEY in etcd, where
 * the editor's tree reads the last run.
 */
import { HOST_SHELL_HELPERS, unraw } from '../etcd/hostShell';

/** Shell `${` is written `\${` in the raw template (no interpolation), and put back by unraw. */
export const TIMER_SCRIPT = unraw(String.raw`#!/bin/sh
# k3s-etcd maintenance timer: written by k3s-etcd (maintain --install-timer); do not edit.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# The rule (rule.ts) in thousandths: prints "defrag WHY" or "keep WHY".
decide() {
  db=$1 inuse=$2 quota=$3
  if [ "$((db * 1000))" -gt "$((quota * QUOTA_PERMILLE))" ]; then
    echo "defrag $db bytes is over $QUOTA_PERMILLE/1000 of its $quota-byte quota"
    return
  fi
  free=$((db - inuse))
  [ "$free" -lt 0 ] && free=0
  if [ "$db" -gt 0 ] && [ "$((free * 1000))" -gt "$((db * FREE_PERMILLE))" ] && [ "$db" -gt "$MIN_DB_BYTES" ]; then
    echo "defrag $free of its $db bytes are free (over $FREE_PERMILLE/1000, file over $MIN_DB_BYTES bytes)"
    return
  fi
  echo "keep $free of $db bytes free, under the rule"
}

if [ "\${1:-}" = --decide ]; then
  : "\${QUOTA_PERMILLE:=800}" "\${FREE_PERMILLE:=500}" "\${MIN_DB_BYTES:=67108864}"
  decide "$2" "$3" "$4"
  exit 0
fi

missing() { echo "k3s-etcd-maintain: $1 is not set (is /etc/k3s-etcd/maintain.env there?)" >&2; exit 2; }
[ -n "\${CLUSTER:-}" ] || missing CLUSTER
[ -n "\${HOST:-}" ] || missing HOST
[ -n "\${NAMES:-}" ] || missing NAMES
[ -n "\${ENDPOINTS:-}" ] || missing ENDPOINTS
[ -n "\${LOCAL:-}" ] || missing LOCAL
[ -n "\${FREE_PERMILLE:-}" ] || missing FREE_PERMILLE
[ -n "\${MIN_DB_BYTES:-}" ] || missing MIN_DB_BYTES
[ -n "\${QUOTA_PERMILLE:-}" ] || missing QUOTA_PERMILLE
[ -n "\${RECENT_REVISIONS:-}" ] || missing RECENT_REVISIONS
[ -n "\${KEEP_REPORTS:-}" ] || missing KEEP_REPORTS
[ -n "\${REPORTS_DIR:-}" ] || missing REPORTS_DIR
[ -n "\${RECORD_KEY:-}" ] || missing RECORD_KEY
# Lists in the env file are comma-separated (no quoting needed there).
NAMES=$(printf '%s' "$NAMES" | tr , ' ')
ENDPOINTS=$(printf '%s' "$ENDPOINTS" | tr , ' ')
PKI=\${PKI:-/etc/etcd/pki}
ETCD_ENV=\${ETCD_ENV:-/etc/etcd/etcd.env}

mkdir -p "$REPORTS_DIR" && chmod 0700 "$REPORTS_DIR" || exit 2
exec 9>"$REPORTS_DIR/.lock"
if ! flock -n 9; then
  echo "another maintenance run holds $REPORTS_DIR/.lock: nothing done"
  exit 0
fi

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LINES=
SIZES=
DEFRAGGED=
say() {
  echo "$1"
  LINES="$LINES$(printf '%s' "$1" | jstr),"
}
${HOST_SHELL_HELPERS}
# Per member: name, URL, status JSON (empty when it did not answer).
nth() { shift "$1"; printf '%s' "$1"; }
count() { set -- $1; echo $#; }
N=$(count "$ENDPOINTS")

quota=$(sed -n 's/^ETCD_QUOTA_BACKEND_BYTES=\([0-9][0-9]*\)$/\1/p' "$ETCD_ENV" 2>/dev/null | tail -n 1)
QUOTA=\${quota:-2147483648}

status_of() { ctl --endpoints="$1" --command-timeout=\${2:-10s} endpoint status -w json 2>&1; }

finish() {
  result=$1 summary=$2 code=$3
  FINISHED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  record="{\"v\":1,\"cluster\":$(printf '%s' "$CLUSTER" | jstr),\"host\":$(printf '%s' "$HOST" | jstr),\"startedAt\":\"$STARTED\",\"finishedAt\":\"$FINISHED\",\"result\":\"$result\",\"summary\":$(printf '%s' "$summary" | jstr),\"defragmented\":[\${DEFRAGGED%,}]}"
  umask 077
  printf '%s\n' "{\"v\":1,\"cluster\":$(printf '%s' "$CLUSTER" | jstr),\"host\":$(printf '%s' "$HOST" | jstr),\"startedAt\":\"$STARTED\",\"finishedAt\":\"$FINISHED\",\"result\":\"$result\",\"summary\":$(printf '%s' "$summary" | jstr),\"quotaBytes\":$QUOTA,\"members\":[\${SIZES%,}],\"defragmented\":[\${DEFRAGGED%,}],\"lines\":[\${LINES%,}]}" \
    >"$REPORTS_DIR/maintain-$stamp-$$.json.tmp" &&
    mv -f "$REPORTS_DIR/maintain-$stamp-$$.json.tmp" "$REPORTS_DIR/maintain-$stamp-$$.json"
  ls -1t "$REPORTS_DIR"/maintain-*.json 2>/dev/null | tail -n +"$((KEEP_REPORTS + 1))" | while read -r old; do rm -f "$old"; done
  if [ "$result" != skipped ]; then
    printf '%s' "$record" | ctl --endpoints="$LOCAL" --command-timeout=10s put "$RECORD_KEY" >/dev/null 2>&1 ||
      echo "the last-run record could not be written to etcd (it stays in $REPORTS_DIR)"
  fi
  echo "$result: $summary"
  exit "$code"
}

# 1. Only the leader's host acts.
local_json=$(status_of "$LOCAL")
me=$(printf '%s' "$local_json" | num member_id)
leader=$(printf '%s' "$local_json" | num leader)
if [ -z "$me" ] || [ -z "$leader" ] || [ "$leader" = 0 ]; then
  say "this host's member ($LOCAL) did not answer: $(printf '%s' "$local_json" | tail -n 1)"
  finish failed "this host's member did not answer" 1
fi
if [ "$me" != "$leader" ]; then
  finish skipped "this host's member does not lead; the leader's host runs the maintenance" 0
fi

# 2. Every member answers; the rule per member.
i=1 NEED= LEADER_NAME= DOWN=
while [ "$i" -le "$N" ]; do
  name=$(nth "$i" $NAMES) url=$(nth "$i" $ENDPOINTS)
  j=$(status_of "$url")
  db=$(printf '%s' "$j" | num dbSize)
  if [ -z "$db" ]; then
    DOWN="$DOWN $name"
    say "$name ($url) does not answer: $(printf '%s' "$j" | tail -n 1 | cut -c1-300)"
  else
    inuse=$(printf '%s' "$j" | num dbSizeInUse)
    inuse=\${inuse:-$db}
    id=$(printf '%s' "$j" | num member_id)
    [ "$id" = "$leader" ] && LEADER_NAME=$name
    verdict=$(decide "$db" "$inuse" "$QUOTA")
    say "$name: $verdict"
    SIZES="$SIZES{\"member\":$(printf '%s' "$name" | jstr),\"dbBytes\":$db,\"inUseBytes\":$inuse},"
    case $verdict in defrag*) NEED="$NEED $name" ;; esac
  fi
  i=$((i + 1))
done
if [ -n "$DOWN" ]; then
  finish refused "not every member answers (\${DOWN# }); defragmenting another member could cost the quorum" 1
fi

alarms=$(ctl --endpoints="$LOCAL" --command-timeout=10s alarm list 2>&1) || finish failed "the alarm list could not be read" 1
case $alarms in
  *CORRUPT*) say "$alarms"; finish refused "a CORRUPT alarm is armed; restore that member from a snapshot" 1 ;;
esac
NOSPACE=
case $alarms in *NOSPACE*) NOSPACE=1; say "NOSPACE is armed: every member is defragmented" ;; esac
if [ -n "$NOSPACE" ]; then NEED=" $NAMES"; fi
if [ -z "$NEED" ]; then
  finish nothing "no member needs defragmentation" 0
fi

# 3. Compaction, unless K3s's API server compacted recently.
rev=$(printf '%s' "$local_json" | num revision)
last=$(ctl --endpoints="$LOCAL" --command-timeout=10s get compact_rev_key --print-value-only 2>/dev/null | tr -cd 0-9)
if [ -n "$last" ] && [ "$((rev - last))" -le "$RECENT_REVISIONS" ] && [ -z "$NOSPACE" ]; then
  say "compaction skipped: K3s's API server compacted at revision $last, $((rev - last)) revisions ago"
else
  out=$(ctl --endpoints="$LOCAL" --command-timeout=120s compact "$rev" --physical 2>&1)
  case $out in
    *"required revision has been compacted"*) say "nothing to compact at revision $rev" ;;
    compacted*) say "compacted the history at revision $rev" ;;
    *) say "compaction failed: $(printf '%s' "$out" | tail -n 1 | cut -c1-300)" ;;
  esac
fi

# 4. Followers one at a time, the leader last; every other member healthy before each.
# Answers a linearizable read (a quorum read through this member; an armed NOSPACE allows reads).
healthy() { ctl --endpoints="$1" --command-timeout=5s get --consistency=l k3s-etcd-health-probe >/dev/null 2>&1; }
index_of() { status_of "$1" 5s | num raftIndex; }
caught_up() {
  k=0
  while [ "$k" -lt 60 ]; do
    if healthy "$1"; then
      a=$(index_of "$1") b=$(index_of "$LOCAL")
      if [ -n "$a" ] && [ -n "$b" ] && [ "$((b - a))" -le 50 ]; then return 0; fi
    fi
    k=$((k + 1))
    sleep 1
  done
  return 1
}
defrag_one() {
  dn=$1 du=$2
  di=1
  while [ "$di" -le "$N" ]; do
    other=$(nth "$di" $ENDPOINTS)
    if [ "$other" != "$du" ] && ! healthy "$other"; then
      finish failed "stopped before $dn: $(nth "$di" $NAMES) is not healthy" 1
    fi
    di=$((di + 1))
  done
  now=$(status_of "$LOCAL" 5s | num leader)
  if [ "$now" != "$leader" ]; then
    finish failed "stopped before $dn: the leadership moved; the new leader's host takes over at its next run" 1
  fi
  db=$(status_of "$du" 5s | num dbSize)
  secs=$((60 + (\${db:-0} / 104857600 + 1) * 5))
  t0=$(date +%s)
  out=$(ctl --endpoints="$du" --command-timeout="\${secs}s" defrag 2>&1)
  code=$?
  after=$(status_of "$du" 5s | num dbSize)
  if [ "$code" -ne 0 ]; then
    say "$dn: defragmentation failed: $(printf '%s' "$out" | tail -n 1 | cut -c1-300)"
    finish failed "defragmentation of $dn failed" 1
  fi
  say "$dn: defragmented, \${db:-?} -> \${after:-?} bytes in $(($(date +%s) - t0)) s"
  DEFRAGGED="$DEFRAGGED$(printf '%s' "$dn" | jstr),"
  caught_up "$du" || finish failed "$dn is not healthy and caught up 60 s after its defragmentation" 1
}
for name in $NEED; do
  [ "$name" = "$LEADER_NAME" ] && continue
  i=1
  while [ "$i" -le "$N" ]; do
    [ "$(nth "$i" $NAMES)" = "$name" ] && defrag_one "$name" "$(nth "$i" $ENDPOINTS)"
    i=$((i + 1))
  done
done
if [ -n "$LEADER_NAME" ]; then
  case " $NEED " in *" $LEADER_NAME "*) defrag_one "$LEADER_NAME" "$LOCAL" ;; esac
fi

# 5. NOSPACE disarmed only with headroom everywhere.
if [ -n "$NOSPACE" ]; then
  full=
  for url in $ENDPOINTS; do
    db=$(status_of "$url" 5s | num dbSize)
    if [ -z "$db" ] || [ "$((db * 1000))" -ge "$((QUOTA * QUOTA_PERMILLE))" ]; then full=1; fi
  done
  if [ -n "$full" ]; then
    finish failed "NOSPACE stays armed: a member is still at $QUOTA_PERMILLE/1000 of its quota or more; run k3s-etcd maintain --rescue" 1
  fi
  ctl --endpoints="$LOCAL" --command-timeout=10s alarm disarm >/dev/null 2>&1 || finish failed "disarming NOSPACE failed" 1
  say "disarmed NOSPACE: every member is under $QUOTA_PERMILLE/1000 of its quota"
fi
finish done "defragmented $(printf '%s' "\${DEFRAGGED%,}" | tr -d '"' | sed 's/,/, /g')" 0
`);
