// Bans, timeouts and room settings, shared by every pod through the chat-moderation bucket: a moderator's
// action on any pod (or an operator's over NATS) is one KV write; every pod watches the bucket and enforces
// it within milliseconds (kicking banned users, telling timed-out ones, applying slow mode and the filter).
import { bytes, encode, type KvWatch, watchKv } from '@live/bus';
import { buckets, type ChatSanction, chatSanction, type RoomSettings, roomSettings } from '@live/contracts';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { z } from 'zod';

export type SanctionKind = 'ban' | 'timeout';

export interface ModerationListener {
  /** A ban or timeout was set (sanction) or lifted (null) for a user in a room. */
  sanctionChanged(kind: SanctionKind, room: string, userId: string, sanction: ChatSanction | null): void;
  settingsChanged(room: string, settings: RoomSettings): void;
}

const DEFAULT_SETTINGS: RoomSettings = Object.freeze({ slowSeconds: 0, words: [] });

/** The bucket holds two kinds of record; the key says which. */
const moderationRecord = z.union([chatSanction, roomSettings]);

const sanctionKey = (kind: SanctionKind, room: string, userId: string) => `${room}.${kind}.${userId}`;
const settingsKey = (room: string) => `${room}.settings`;

function parseKey(key: string): { room: string; kind: SanctionKind | 'settings'; userId?: string } | null {
  const [room, kind, userId] = key.split('.');
  if (!room) return null;
  if (kind === 'settings') return { room, kind };
  if ((kind === 'ban' || kind === 'timeout') && userId) return { room, kind, userId };
  return null;
}

interface CompiledSettings extends RoomSettings {
  filter: RegExp | null;
}

export class Moderation {
  private readonly sanctions = new Map<string, ChatSanction>();
  private readonly settings = new Map<string, CompiledSettings>();
  private kv: KV | undefined;
  private watch: KvWatch | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
    private readonly listener: ModerationListener,
  ) {}

  /** Resolves when the current bans, timeouts and settings are loaded. */
  async start(): Promise<void> {
    this.kv = await new Kvm(this.nc).open(buckets.chatModeration);
    this.watch = await watchKv({
      nc: this.nc,
      logger: this.logger,
      bucket: buckets.chatModeration,
      schema: moderationRecord,
      onPut: (value, entry) => this.apply(entry.key, value),
      onDelete: (key) => this.apply(key, null),
    });
    await this.watch.initialized;
  }

  stop(): void {
    this.watch?.stop();
  }

  /** The active sanction of this kind, if any (an expired one counts as none). */
  sanction(kind: SanctionKind, room: string, userId: string, now = Date.now()): ChatSanction | undefined {
    const s = this.sanctions.get(sanctionKey(kind, room, userId));
    if (!s || (s.until !== null && s.until <= now)) return undefined;
    return s;
  }

  roomSettings(room: string): RoomSettings {
    const s = this.settings.get(room);
    return s ? { slowSeconds: s.slowSeconds, words: s.words } : DEFAULT_SETTINGS;
  }

  /** Masks the room's filtered words (whole words, any case) with asterisks. */
  filter(room: string, text: string): string {
    const re = this.settings.get(room)?.filter;
    return re ? text.replace(re, (word) => '*'.repeat([...word].length)) : text;
  }

  async sanctionUser(
    kind: SanctionKind,
    room: string,
    userId: string,
    by: string,
    seconds?: number,
    reason?: string,
  ): Promise<ChatSanction> {
    const now = Date.now();
    const record: ChatSanction = {
      until: seconds === undefined ? null : now + seconds * 1000,
      by,
      at: now,
      ...(reason ? { reason } : {}),
    };
    await this.bucket().put(sanctionKey(kind, room, userId), encode(chatSanction, record));
    return record;
  }

  /** Lifts both a ban and a timeout. */
  async lift(room: string, userId: string): Promise<void> {
    await this.bucket().delete(sanctionKey('ban', room, userId));
    await this.bucket().delete(sanctionKey('timeout', room, userId));
  }

  /**
   * Changes some of a room's settings, keeping the others: read, merge, write with compare-and-set, again
   * on a conflict. (Merging into this pod's watched copy lost updates: slow mode and the word filter sent
   * back to back, the second write was based on a copy that did not have the first yet.)
   */
  async updateSettings(room: string, change: Partial<RoomSettings>): Promise<RoomSettings> {
    const kv = this.bucket();
    const key = settingsKey(room);
    for (let attempt = 1; ; attempt++) {
      const entry = await kv.get(key);
      const stored = entry?.operation === 'PUT' ? roomSettings.safeParse(entry.json()) : undefined;
      const next = roomSettings.parse({ ...(stored?.success ? stored.data : DEFAULT_SETTINGS), ...change });
      const data = bytes(JSON.stringify(next));
      try {
        if (entry) await kv.update(key, data, entry.revision);
        else await kv.create(key, data);
        return next;
      } catch (error) {
        // Another writer got there first (wrong last sequence): read theirs and merge again.
        if (attempt >= 10) throw error;
      }
    }
  }

  private bucket(): KV {
    if (!this.kv) throw new Error('moderation not started');
    return this.kv;
  }

  private apply(key: string, value: z.output<typeof moderationRecord> | null): void {
    const parsed = parseKey(key);
    if (!parsed) {
      this.logger.warn({ key }, 'unknown chat-moderation key ignored');
      return;
    }
    if (parsed.kind === 'settings') {
      const settings = value && 'slowSeconds' in value ? value : DEFAULT_SETTINGS;
      this.settings.set(parsed.room, { ...settings, filter: compileFilter(settings.words) });
      this.listener.settingsChanged(parsed.room, settings);
      return;
    }
    const sanction = value && 'by' in value ? value : null;
    const mapKey = sanctionKey(parsed.kind, parsed.room, parsed.userId as string);
    if (sanction) this.sanctions.set(mapKey, sanction);
    else this.sanctions.delete(mapKey);
    this.listener.sanctionChanged(parsed.kind, parsed.room, parsed.userId as string, sanction);
  }
}

function compileFilter(words: string[]): RegExp | null {
  if (words.length === 0) return null;
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  // Whole words in any script: not preceded or followed by a letter or digit.
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
}
