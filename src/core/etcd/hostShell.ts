/**
 * Shell helpers the scripts that run on etcd hosts without this tool share (the maintenance
 * timer, the backup timer): `jstr` (stdin as a JSON string: backslashes, quotes and tabs escaped,
 * other control characters dropped), `ctl` (the installed etcdctl with the member's TLS files
 * under `$PKI`) and `num FIELD` (the first number of `"FIELD":N` in etcdctl's JSON on stdin).
 */

/** `\${` in a raw template (no interpolation there) put back to the shell's `${`. */
export const unraw = (s: string): string => s.replaceAll('\\${', '${');

export const HOST_SHELL_HELPERS = String.raw`jstr() {
  printf '"'
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | tr -d '\000-\010\012-\037'
  printf '"'
}
ctl() {
  etcdctl --cacert="$PKI/ca.pem" --cert="$PKI/server.pem" --key="$PKI/server-key.pem" "$@"
}
num() { sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" | head -n 1; }
`;
