/** The K3s token's forms: the full `K10<CA hash>::server:<secret>` and the plain secret. */

/** The secret of a token in K3s's full form (`K10<CA hash>::server:<secret>`), or the token. */
export function tokenSecret(token: string): string {
  const t = token.trim();
  return /::server:(.*)$/.exec(t)?.[1] ?? t;
}

/** Does the host's token file (full form, or plain) hold `token`? */
export function tokenMatches(token: string, fileText: string): boolean {
  return tokenSecret(fileText) === tokenSecret(token);
}
