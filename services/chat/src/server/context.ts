// What every connection shares: config, tokens, rooms, moderation, limits, the review hook, metrics.
import type { ChatAuthor, ChatReviewReply } from '@live/contracts';
import type { Counter } from 'prom-client';
import type { Tokens } from '../auth/tokens.js';
import type { ChatConfig } from '../config.js';
import { TokenBucket } from '../limits.js';
import type { Moderation } from '../moderation/moderation.js';
import type { Rooms } from '../rooms/rooms.js';
import type { ChatConnection } from './connection.js';

export interface ChatMetrics {
  messages: Counter;
  refused: Counter<'reason'>;
  closed: Counter<'reason'>;
}

export interface ChatContext {
  config: ChatConfig;
  tokens: Tokens;
  rooms: Rooms;
  moderation: Moderation;
  limits: Limits;
  review: (room: string, user: ChatAuthor, text: string) => Promise<ChatReviewReply>;
  metrics: ChatMetrics;
  /** Logs a kind of event once per minute with a count of the others (floods must not flood the log). */
  logOnce: (kind: string, fields: Record<string, unknown>, message: string) => void;
  connectionJoined: (connection: ChatConnection) => void;
  connectionClosed: (connection: ChatConnection) => void;
}

/** Per-user and per-room token buckets and slow mode, on this pod. */
export class Limits {
  private readonly users = new Map<string, TokenBucket>();
  private readonly rooms = new Map<string, TokenBucket>();
  private readonly lastSent = new Map<string, number>();

  constructor(
    private readonly config: ChatConfig,
    private readonly slowSeconds: (room: string) => number,
  ) {}

  /** ms to wait before this user may send in this room (0: may send now, and a token is taken). */
  user(room: string, userId: string, now: number): number {
    const key = `${room}/${userId}`;
    let bucket = this.users.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.config.CHAT_USER_BURST, this.config.CHAT_USER_REFILL_MS, now);
      this.users.set(key, bucket);
    }
    return bucket.take(now);
  }

  room(room: string, now: number): number {
    let bucket = this.rooms.get(room);
    if (!bucket) {
      bucket = new TokenBucket(this.config.CHAT_ROOM_BURST, this.config.CHAT_ROOM_REFILL_MS, now);
      this.rooms.set(room, bucket);
    }
    return bucket.take(now);
  }

  slowMode(room: string, userId: string, now: number): number {
    const slow = this.slowSeconds(room) * 1000;
    if (slow === 0) return 0;
    const last = this.lastSent.get(`${room}/${userId}`);
    return last === undefined ? 0 : Math.max(0, last + slow - now);
  }

  sent(room: string, userId: string, now: number): void {
    if (this.slowSeconds(room) > 0) this.lastSent.set(`${room}/${userId}`, now);
  }

  /** Forgets full buckets and expired slow-mode marks (called every minute). */
  sweep(now = Date.now()): void {
    for (const [key, bucket] of this.users) if (bucket.isFull(now)) this.users.delete(key);
    for (const [key, bucket] of this.rooms) if (bucket.isFull(now)) this.rooms.delete(key);
    for (const [key, at] of this.lastSent) if (now - at > 3600_000) this.lastSent.delete(key);
  }
}
