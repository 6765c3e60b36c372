// Who may use the studio and ops APIs. Production (WEB_AUTH=token): the admin token as `Authorization:
// Bearer <token>` (scripts) or in an HttpOnly, SameSite=Strict cookie set by POST /api/login (pages:
// EventSource cannot send headers). Local mode (WEB_AUTH=none) lets everyone in, by explicit choice.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AuthMode } from '../shared/api.js';

export const COOKIE = 'live_admin';

const digest = (value: string) => createHash('sha256').update(value).digest();

export class AdminAuth {
  private readonly expected: Buffer | null;

  constructor(
    readonly mode: AuthMode,
    token: string | undefined,
  ) {
    this.expected = token ? digest(token) : null;
  }

  /** Compares digests in constant time, so neither the token nor its length leaks through timing. */
  matches(candidate: string): boolean {
    return this.expected !== null && timingSafeEqual(digest(candidate), this.expected);
  }

  isAdmin(req: IncomingMessage): boolean {
    if (this.mode === 'none') return true;
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) return this.matches(bearer);
    const cookie = readCookie(req, COOKIE);
    return cookie !== null && this.matches(cookie);
  }

  /** The Set-Cookie value for a successful login (Secure when the request came over HTTPS). */
  cookie(token: string, req: IncomingMessage): string {
    const secure = req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
    return `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200${secure}`;
  }

  static clearCookie(): string {
    return `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}

function readCookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) {
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return null;
      }
    }
  }
  return null;
}
