/** Types of connectionToken.mjs (plain JavaScript so that scripts/dev-web.sh runs it directly). */
export const TOKEN_PATTERN: RegExp;
export function newConnectionToken(): string;
export function ensureConnectionTokenFile(file: string): string;
export function withToken(url: string, token: string): string;
