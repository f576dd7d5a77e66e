/**
 * The scripts the backup timer runs on the hosts (`k3s-etcd backup install`). Etcd hosts have no
 * Node: POSIX `sh` over etcdctl, openssl, gzip, curl and ssh, every value from the environment
 * (the unit's EnvironmentFile, written by `install.ts` from checked inventory values): nothing
 * of the inventory is pasted into this text.
 *
 * One run (`BACKUP_SCRIPT`): a lock on this host; one host takes the backup (`BACKUP_ELECT`: the
 * leader's, or when `backup.hosts` leaves the leader's member out, the first backup host whose
 * member answers; the others record "skipped"), so hosts do not race; `etcdctl snapshot save`
 * from the local member, its revision from `snapshot status`, the live keys at that revision, its
 * SHA-256; gzip and `openssl enc -aes-256-ctr -pbkdf2` with a random passphrase wrapped for each
 * recipient with RSA-OAEP (`openssl pkeyutl`): the plain snapshot never stays on disk; the
 * record (record.ts) beside it; copies to every destination (another host over SSH with a key
 * restricted to the receiver, S3 with curl's SigV4 and the credentials file, refused unless it is
 * root's and 0600, read into a 0600 curl config); the generations kept (retention.ts's rule,
 * `--prune` prints what it would delete from names on stdin, for the test that holds the two
 * together) locally and at every destination; the outcome in `last-run.json`, with a warning for
 * each certificate in the host's pki folder that ends within CERT_WARN_DAYS (every run, leader or
 * not: expiry warned ahead by the timer).
 *
 * `RECEIVER_SCRIPT` is the forced command of the backup key on a destination host: `put NAME`
 * (printing the stored file's SHA-256, which the sender compares), `list`, `get NAME`,
 * `delete NAME` in its one folder, names checked.
 */

import { HOST_SHELL_HELPERS, unraw } from '../etcd/hostShell';

/** Shell `${` is written `\${` in the raw templates (no interpolation), and put back by unraw. */

/**
 * Which backup host takes this run's backup, given the local member's id and the leader's id
 * (from the local member's `endpoint status`): prints `act`, `skip: WHY` or `fail: WHY`. The
 * leader's host acts. When the leader's member is not one of the backup hosts' (`backup.hosts`
 * a subset), the first of `BACKUP_MEMBERS` (`member|client URL` per backup host, in the
 * inventory's order) whose member answers a health check acts, so one host still takes it. The
 * leader's name comes from the local member's member list. Without `BACKUP_MEMBERS` (an env file
 * of an older install) only the leader's host acts.
 */
export const BACKUP_ELECT = unraw(String.raw`elect() {
  if [ "$1" = "$2" ]; then echo act; return 0; fi
  if [ -z "\${BACKUP_MEMBERS:-}" ]; then
    echo "skip: this host's member does not lead; the leader's host takes the backup"
    return 0
  fi
  ml=$(ctl --endpoints="$LOCAL" --command-timeout=10s member list -w json 2>&1) || {
    echo "fail: the member list could not be read from $LOCAL: $(printf '%s' "$ml" | tail -n 1 | cut -c1-200)"
    return 0
  }
  lname=$(printf '%s' "$ml" | tr '{' '\n' | grep "^\"ID\":$2," | sed -n 's/.*"name":"\([^"]*\)".*/\1/p' | head -n 1)
  if [ -z "$lname" ]; then
    echo "fail: the leader ($2) is not in the member list of $LOCAL (or has no name yet)"
    return 0
  fi
  for m in $BACKUP_MEMBERS; do
    if [ "\${m%%|*}" = "$lname" ]; then
      echo "skip: this host's member does not lead; the leader's host ($lname) takes the backup"
      return 0
    fi
  done
  for m in $BACKUP_MEMBERS; do
    n=\${m%%|*}
    if [ "$n" = "$MEMBER" ]; then echo act; return 0; fi
    if ctl --endpoints="\${m#*|}" --command-timeout=5s endpoint health >/dev/null 2>&1; then
      echo "skip: the leader ($lname) is not a backup host; $n, the first backup host whose member answers, takes the backup"
      return 0
    fi
  done
  echo "fail: this host's member ($MEMBER) is not in BACKUP_MEMBERS"
}
`);

/**
 * The copies' checks. `creds_problem FILE` prints why the S3 credentials file must not be used
 * (nothing when it may): it must be a file of the user the timer runs as (root) that no one else
 * can read or write (mode 600, or 400), as the issue's "credentials in a 0600 file" asks. A copy
 * counts only when it reads back as sent: `readback GOT WANT WHAT` prints why not (nothing when
 * it does), GOT being what the receiver's `put` printed (the stored file's SHA-256) or the
 * `Content-Length` of an S3 HEAD (`content_length` reads it from the headers on stdin).
 * `s3_keys BUCKET_URL PREFIX` lists every key under PREFIX through the run's `s3` (curl with
 * SigV4), page after page with ListObjectsV2's continuation tokens (a page holds at most 1000),
 * the query's parameters in the sorted order SigV4 signs; it fails, having printed part of the
 * keys, when a page cannot be read, so the caller prunes nothing on a partial list.
 */
export const BACKUP_COPY_HELPERS = unraw(String.raw`s3_keys() {
  tok=
  while :; do
    if [ -n "$tok" ]; then
      page=$(s3 -G "$1" --data-urlencode "continuation-token=$tok" --data-urlencode list-type=2 --data-urlencode "prefix=$2") || return 1
    else
      page=$(s3 -G "$1" --data-urlencode list-type=2 --data-urlencode "prefix=$2") || return 1
    fi
    printf '%s' "$page" | tr '<' '
' | sed -n 's/^Key>//p'
    printf '%s' "$page" | grep -q '<IsTruncated>true</IsTruncated>' || return 0
    next=$(printf '%s' "$page" | tr '<' '
' | sed -n 's/^NextContinuationToken>//p' | head -n 1)
    [ -n "$next" ] && [ "$next" != "$tok" ] || return 1
    tok=$next
  done
}
readback() {
  [ "$1" = "$2" ] && return 0
  echo "$3 there is $(printf '%s' "\${1:-unknown (nothing came back)}" | head -n 1 | cut -c1-80), not $2"
}
content_length() {
  tr -d '\r' | grep -i '^content-length:' | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//; s/[[:space:]]*$//'
}
creds_problem() {
  if [ ! -f "$1" ]; then echo "$1 is not there (or not a file)"; return 0; fi
  mo=$(stat -L -c '%a %u' "$1" 2>/dev/null) || { echo "$1 cannot be read"; return 0; }
  case "$mo" in
    "600 $(id -u)" | "400 $(id -u)") ;;
    *) echo "$1 is mode \${mo% *} and owned by uid \${mo#* }: it must be mode 600 and owned by uid $(id -u) (chmod 600 $1; chown $(id -u) $1)" ;;
  esac
}
`);

export const BACKUP_SCRIPT = unraw(String.raw`#!/bin/sh
# k3s-etcd backup timer: written by k3s-etcd (backup install); do not edit.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 077

# Generational retention (retention.ts): names on stdin, the ones to delete on stdout.
prune() {
  sort -r | awk -v H="$1" -v D="$2" -v W="$3" '
    match($0, /-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z/) {
      s = substr($0, RSTART + 1, 15); day = substr(s, 1, 8); hour = substr(s, 1, 11)
      cmd = "date -u -d " substr(day, 1, 4) "-" substr(day, 5, 2) "-" substr(day, 7, 2) " +%G-W%V"
      cmd | getline week; close(cmd)
      keep = (n == 0)
      if (!(hour in hs) && nh < H) { hs[hour] = 1; nh++; keep = 1 }
      if (!(day in ds) && nd < D) { ds[day] = 1; nd++; keep = 1 }
      if (!(week in ws) && nw < W) { ws[week] = 1; nw++; keep = 1 }
      n++
      if (!keep) print $0
    }'
}

if [ "\${1:-}" = --prune ]; then
  prune "$2" "$3" "$4"
  exit 0
fi

missing() { echo "k3s-etcd-backup: $1 is not set (is /etc/k3s-etcd/backup.env there?)" >&2; exit 2; }
[ -n "\${CLUSTER:-}" ] || missing CLUSTER
[ -n "\${HOST:-}" ] || missing HOST
[ -n "\${MEMBER:-}" ] || missing MEMBER
[ -n "\${LOCAL:-}" ] || missing LOCAL
[ -n "\${LOCAL_DIR:-}" ] || missing LOCAL_DIR
[ -n "\${KEEP_HOURLY:-}" ] || missing KEEP_HOURLY
[ -n "\${KEEP_DAILY:-}" ] || missing KEEP_DAILY
[ -n "\${KEEP_WEEKLY:-}" ] || missing KEEP_WEEKLY
[ -n "\${RECIPIENTS_DIR:-}" ] || missing RECIPIENTS_DIR
PKI=\${PKI:-/etc/etcd/pki}
DEST_HOSTS=\${DEST_HOSTS:-}
DEST_S3=\${DEST_S3:-}
SSH_KEY=\${SSH_KEY:-/etc/k3s-etcd/backup_id_ed25519}
SSH_KNOWN=\${SSH_KNOWN:-/etc/k3s-etcd/backup_known_hosts}

mkdir -p "$LOCAL_DIR" && chmod 0700 "$LOCAL_DIR" || exit 2
exec 9>"$LOCAL_DIR/.lock"
if ! flock -n 9; then
  echo "another backup run holds $LOCAL_DIR/.lock: nothing done"
  exit 0
fi

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LINES=
WORK=
CERTS=
say() {
  echo "$1"
  LINES="$LINES$(printf '%s' "$1" | jstr),"
}
${HOST_SHELL_HELPERS}
${BACKUP_ELECT}
${BACKUP_COPY_HELPERS}
finish() {
  [ -n "$WORK" ] && rm -rf "$WORK"
  printf '{"v":1,"host":%s,"startedAt":"%s","finishedAt":"%s","result":"%s","summary":%s,"lines":[%s],"certWarnings":[%s]}\n' \
    "$(printf '%s' "$HOST" | jstr)" "$STARTED" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" \
    "$(printf '%s' "$2" | jstr)" "\${LINES%,}" "\${CERTS%,}" >"$LOCAL_DIR/last-run.json.tmp" &&
    mv -f "$LOCAL_DIR/last-run.json.tmp" "$LOCAL_DIR/last-run.json"
  echo "$1: $2"
  exit "$3"
}

# 0. Expiry is a metric too: every run (on every backup host, leader or not) warns ahead about
# this host's certificates that end within CERT_WARN_DAYS (30 by default), in its journal and
# in last-run.json, which k3s-etcd backup status and the editor's Backups node show.
case \${CERT_WARN_DAYS:-30} in
  '' | *[!0-9]*) WARN_DAYS=30 ;;
  *) WARN_DAYS=\${CERT_WARN_DAYS:-30} ;;
esac
for f in "$PKI"/*.pem; do
  case $f in *-key.pem) continue ;; esac
  end=$(openssl x509 -in "$f" -noout -enddate 2>/dev/null) || continue
  openssl x509 -in "$f" -noout -checkend $((WARN_DAYS * 86400)) >/dev/null 2>&1 && continue
  w="certificate $f on $HOST ends \${end#notAfter=}: within $WARN_DAYS days; renew it (k3s-etcd certs renew)"
  echo "warning: $w" >&2
  CERTS="$CERTS$(printf '%s' "$w" | jstr),"
done

# 1. One host takes the backup: the leader's, or the first backup host that answers when the
# leader's member is not one of the backup hosts (elect).
st=$(ctl --endpoints="$LOCAL" --command-timeout=10s endpoint status -w json 2>&1)
me=$(printf '%s' "$st" | num member_id)
leader=$(printf '%s' "$st" | num leader)
if [ -z "$me" ] || [ -z "$leader" ] || [ "$leader" = 0 ]; then
  say "this host's member ($LOCAL) did not answer: $(printf '%s' "$st" | tail -n 1 | cut -c1-300)"
  finish failed "this host's member did not answer" 1
fi
verdict=$(elect "$me" "$leader")
case $verdict in
  act) ;;
  skip:*) finish skipped "\${verdict#skip: }" 0 ;;
  *) finish failed "\${verdict#fail: }" 1 ;;
esac

# 2. Snapshot, its facts, encrypted at once.
WORK=$(mktemp -d "$LOCAL_DIR/.work-XXXXXXXX") || finish failed "no work folder in $LOCAL_DIR" 1
now=$(date -u +%s)
STAMP=$(date -u -d "@$now" +%Y%m%dT%H%M%SZ)
TAKEN=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
NAME="$CLUSTER-$STAMP"
FILE="$NAME.db.gz.enc"
out=$(ctl --endpoints="$LOCAL" --command-timeout=600s snapshot save "$WORK/snap.db" 2>&1) ||
  { say "$(printf '%s' "$out" | tail -n 1 | cut -c1-300)"; finish failed "etcdctl snapshot save failed" 1; }
ss=$(ctl snapshot status "$WORK/snap.db" -w json 2>/dev/null)
revision=$(printf '%s' "$ss" | num revision)
# Live keys at the snapshot's revision (snapshot status's totalKey counts bbolt's entries).
# A range's count is its total, whatever the limit (etcdctl 3.4 has no --count-only); no count: 0.
kj=$(ctl --endpoints="$LOCAL" --command-timeout=120s get "" --from-key --limit=1 --keys-only --rev="$revision" -w json 2>/dev/null) || kj=
keys=$(printf '%s' "$kj" | num count)
[ -n "$kj" ] && keys=\${keys:-0}
[ -n "$revision" ] && [ -n "$keys" ] || finish failed "the snapshot's revision or key count could not be read" 1
size=$(wc -c <"$WORK/snap.db" | tr -d ' ')
sha=$(sha256sum "$WORK/snap.db" | cut -c1-64)
openssl rand -hex 32 >"$WORK/pass" || finish failed "openssl rand failed" 1
gzip -c "$WORK/snap.db" | openssl enc -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -salt -pass "file:$WORK/pass" -out "$WORK/$FILE" ||
  finish failed "encryption failed" 1
rm -f "$WORK/snap.db"
RECIPIENTS=
for r in "$RECIPIENTS_DIR"/*.pem; do
  [ -f "$r" ] || continue
  fp=$(openssl pkey -pubin -in "$r" -outform DER 2>/dev/null | sha256sum | cut -c1-64)
  wrapped=$(tr -d '\n' <"$WORK/pass" | openssl pkeyutl -encrypt -pubin -inkey "$r" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 | base64 -w0) ||
    finish failed "wrapping the passphrase for $(basename "$r") failed" 1
  RECIPIENTS="$RECIPIENTS{\"fingerprint\":\"$fp\",\"key\":\"$wrapped\"},"
done
rm -f "$WORK/pass"
[ -n "$RECIPIENTS" ] || finish failed "no recipient key in $RECIPIENTS_DIR: nothing could read this backup" 1
esize=$(wc -c <"$WORK/$FILE" | tr -d ' ')
esha=$(sha256sum "$WORK/$FILE" | cut -c1-64)
printf '{"format":"k3s-etcd-backup/1","cluster":%s,"host":%s,"member":%s,"takenAt":"%s","revision":%s,"keys":%s,"size":%s,"sha256":"%s","file":"%s","encryptedSize":%s,"encryptedSha256":"%s","recipients":[%s]}\n' \
  "$(printf '%s' "$CLUSTER" | jstr)" "$(printf '%s' "$HOST" | jstr)" "$(printf '%s' "$MEMBER" | jstr)" \
  "$TAKEN" \
  "$revision" "$keys" "$size" "$sha" "$FILE" "$esize" "$esha" "\${RECIPIENTS%,}" >"$WORK/$NAME.json"
mv -f "$WORK/$FILE" "$LOCAL_DIR/$FILE" && mv -f "$WORK/$NAME.json" "$LOCAL_DIR/$NAME.json" ||
  finish failed "could not put the backup in $LOCAL_DIR" 1
say "saved $FILE: revision $revision, $keys keys, $size bytes (encrypted $esize)"

# 3. Copies off the host, then the generations kept everywhere.
FAILED=
COPIES=
ssh_dest() { # user host port path, then the receiver's command
  u=$1 h=$2 p=$3 d=$4; shift 4
  ssh -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$SSH_KNOWN" \
    -o StrictHostKeyChecking=yes -o ConnectTimeout=15 -o ServerAliveInterval=15 \
    -o ServerAliveCountMax=8 -p "$p" "$u@$h" "$*"
}
# A copy counts when it reads back as sent: the SHA-256 the receiver prints, an S3 HEAD's size.
jsha=$(sha256sum "$LOCAL_DIR/$NAME.json" | cut -c1-64)
jsize=$(wc -c <"$LOCAL_DIR/$NAME.json" | tr -d ' ')
for dest in $DEST_HOSTS; do # user@host:port:path
  u=\${dest%%@*}; rest=\${dest#*@}; h=\${rest%%:*}; rest=\${rest#*:}; p=\${rest%%:*}; d=\${rest#*:}
  where="$u@$h:$d"
  if got=$(ssh_dest "$u" "$h" "$p" "$d" put "$FILE" <"$LOCAL_DIR/$FILE" 2>"$LOCAL_DIR/.ssh.err") &&
    gotj=$(ssh_dest "$u" "$h" "$p" "$d" put "$NAME.json" <"$LOCAL_DIR/$NAME.json" 2>>"$LOCAL_DIR/.ssh.err"); then
    why=$(readback "$got" "$esha" "the SHA-256 of $FILE")
    [ -n "$why" ] || why=$(readback "$gotj" "$jsha" "the SHA-256 of $NAME.json")
  else
    why=$(tail -n 1 "$LOCAL_DIR/.ssh.err" | cut -c1-300)
    why=\${why:-ssh failed}
  fi
  if [ -z "$why" ]; then
    COPIES="$COPIES{\"to\":$(printf 'host:%s' "$where" | jstr),\"ok\":true},"
    say "copied to $where"
    ssh_dest "$u" "$h" "$p" "$d" list 2>/dev/null | grep '\.db\.gz\.enc$' | prune "$KEEP_HOURLY" "$KEEP_DAILY" "$KEEP_WEEKLY" |
      while read -r old; do
        ssh_dest "$u" "$h" "$p" "$d" delete "$old" </dev/null && ssh_dest "$u" "$h" "$p" "$d" delete "\${old%.db.gz.enc}.json" </dev/null
      done
  else
    FAILED="$FAILED $where"
    COPIES="$COPIES{\"to\":$(printf 'host:%s' "$where" | jstr),\"ok\":false},"
    say "copy to $where failed: $why"
  fi
done
rm -f "$LOCAL_DIR/.ssh.err"
for dest in $DEST_S3; do # endpoint|bucket|prefix|region|credentialsFile
  ep=$(printf '%s' "$dest" | cut -d'|' -f1); bucket=$(printf '%s' "$dest" | cut -d'|' -f2)
  prefix=$(printf '%s' "$dest" | cut -d'|' -f3); region=$(printf '%s' "$dest" | cut -d'|' -f4)
  creds=$(printf '%s' "$dest" | cut -d'|' -f5)
  where="s3:$ep/$bucket/$prefix"
  bad=$(creds_problem "$creds")
  if [ -n "$bad" ]; then
    FAILED="$FAILED $where"
    COPIES="$COPIES{\"to\":$(printf '%s' "$where" | jstr),\"ok\":false},"
    say "copy to $where failed: $bad"
    continue
  fi
  ak=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$creds" 2>/dev/null | head -n 1)
  sk=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$creds" 2>/dev/null | head -n 1)
  case "$ak$sk" in *'"'* | *\\*) ak= ;; esac
  if [ -z "$ak" ] || [ -z "$sk" ]; then
    FAILED="$FAILED $where"
    COPIES="$COPIES{\"to\":$(printf '%s' "$where" | jstr),\"ok\":false},"
    say "copy to $where failed: $creds has no usable AWS_ACCESS_KEY_ID= and AWS_SECRET_ACCESS_KEY= lines"
    continue
  fi
  printf 'user = "%s:%s"\n' "$ak" "$sk" >"$LOCAL_DIR/.curl"
  # SigV4 signs x-amz-content-sha256 too; the payload is checked by its SHA-256 in the record.
  s3() {
    curl -sS --fail -K "$LOCAL_DIR/.curl" --aws-sigv4 "aws:amz:$region:s3" \
      -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --connect-timeout 15 \
      --speed-limit 1 --speed-time 120 "$@"
  }
  if s3 -T "$LOCAL_DIR/$FILE" "$ep/$bucket/$prefix$FILE" -o /dev/null 2>"$LOCAL_DIR/.s3.err" &&
    s3 -T "$LOCAL_DIR/$NAME.json" "$ep/$bucket/$prefix$NAME.json" -o /dev/null 2>>"$LOCAL_DIR/.s3.err"; then
    got=$(s3 -I "$ep/$bucket/$prefix$FILE" 2>>"$LOCAL_DIR/.s3.err" | content_length)
    why=$(readback "$got" "$esize" "the size of $FILE")
    if [ -z "$why" ]; then
      got=$(s3 -I "$ep/$bucket/$prefix$NAME.json" 2>>"$LOCAL_DIR/.s3.err" | content_length)
      why=$(readback "$got" "$jsize" "the size of $NAME.json")
    fi
  else
    why=$(tail -n 1 "$LOCAL_DIR/.s3.err" | cut -c1-300)
    why=\${why:-curl failed}
  fi
  if [ -z "$why" ]; then
    COPIES="$COPIES{\"to\":$(printf '%s' "$where" | jstr),\"ok\":true},"
    say "copied to $where"
    # (not "keys": that is the snapshot's key count, named in the run's summary)
    if listed=$(s3_keys "$ep/$bucket" "$prefix" 2>"$LOCAL_DIR/.s3.err"); then
      printf '%s\n' "$listed" | grep '\.db\.gz\.enc$' | sed "s|^$prefix||" | prune "$KEEP_HOURLY" "$KEEP_DAILY" "$KEEP_WEEKLY" |
        while read -r old; do
          s3 -X DELETE "$ep/$bucket/$prefix$old" -o /dev/null && s3 -X DELETE "$ep/$bucket/$prefix\${old%.db.gz.enc}.json" -o /dev/null
        done
    else
      say "warning: the keys in $where could not all be listed, nothing pruned there: $(tail -n 1 "$LOCAL_DIR/.s3.err" | cut -c1-300)"
    fi
  else
    FAILED="$FAILED $where"
    COPIES="$COPIES{\"to\":$(printf '%s' "$where" | jstr),\"ok\":false},"
    say "copy to $where failed: $why"
  fi
  rm -f "$LOCAL_DIR/.curl" "$LOCAL_DIR/.s3.err"
done
printf '[%s]\n' "\${COPIES%,}" >"$LOCAL_DIR/$NAME.copies.json"
ls -1 "$LOCAL_DIR" | grep '\.db\.gz\.enc$' | prune "$KEEP_HOURLY" "$KEEP_DAILY" "$KEEP_WEEKLY" |
  while read -r old; do
    rm -f "$LOCAL_DIR/$old" "$LOCAL_DIR/\${old%.db.gz.enc}.json" "$LOCAL_DIR/\${old%.db.gz.enc}.copies.json"
    echo "pruned $old"
  done
if [ -n "$FAILED" ]; then
  finish failed "saved $FILE (revision $revision, $keys keys); copies failed:$FAILED" 1
fi
finish done "saved $FILE (revision $revision, $keys keys)" 0
`);

export const RECEIVER_SCRIPT = unraw(String.raw`#!/bin/sh
# k3s-etcd backup receiver: the forced command of a backup host's key; do not edit.
set -uf
umask 077
DIR=$1
set -- \${SSH_ORIGINAL_COMMAND:-}
name=\${2:-}
case $name in
  '') ;;
  *[!A-Za-z0-9._-]* | .*) echo "refused: bad name" >&2; exit 2 ;;
esac
case \${1:-} in
  put)
    [ -n "$name" ] || exit 2
    cat >"$DIR/.$name.part" && mv -f "$DIR/.$name.part" "$DIR/$name" &&
      sha256sum "$DIR/$name" | cut -c1-64 ;;
  get) [ -n "$name" ] && exec cat "$DIR/$name" ;;
  delete) [ -n "$name" ] && rm -f "$DIR/$name" ;;
  list) ls -1 "$DIR" ;;
  *) echo "refused: put NAME, get NAME, delete NAME or list" >&2; exit 2 ;;
esac
`);
