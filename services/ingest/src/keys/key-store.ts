// Stream keys. Only the SHA-256 of a key is stored (KV stream-keys: <hash> -> {streamId, keyId, ...});
// the plain key is returned once by create() and never stored or logged. Every ingest replica keeps an
// in-memory mirror of the bucket through a KV watch, so an RTMP publish is checked synchronously (NMS's
// publish path cannot wait) and a revocation anywhere reaches every replica in milliseconds.
import { createHash, randomBytes } from 'node:crypto';
import { decode, encode, retry } from '@live/bus';
import { buckets, type StreamKeyRecord, streamKeyRecord } from '@live/contracts';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';

export const hashKey = (plainKey: string): string => createHash('sha256').update(plainKey).digest('hex');

/** 32 random bytes, base64url: only characters RTMP stream names allow. */
export const generateKey = (): string => `live_${randomBytes(32).toString('base64url')}`;

export interface KeyMatch {
  hash: string;
  record: StreamKeyRecord;
}

export class KeyStore {
  private readonly byHash = new Map<string, StreamKeyRecord>();
  private kv: KV | undefined;
  private loaded = false;
  private stopped = false;
  private lastRevision = 0;
  private loadedAtRevision = Number.POSITIVE_INFINITY;
  private watchIterator: { stop(): void } | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
    /** Called with the hash of every key that disappears (revoked): disconnects its publishers, returns how many. */
    private readonly onRevoked: (hash: string) => number,
  ) {}

  /** True once the whole bucket has been read: until then publishes cannot be checked (not ready). */
  get ready(): boolean {
    return this.loaded;
  }

  get size(): number {
    return this.byHash.size;
  }

  async start(): Promise<void> {
    this.kv = await new Kvm(this.nc).open(buckets.streamKeys);
    await this.watch();
  }

  stop(): void {
    this.stopped = true;
    this.watchIterator?.stop();
  }

  lookup(plainKey: string): KeyMatch | null {
    const hash = hashKey(plainKey);
    const record = this.byHash.get(hash);
    return record ? { hash, record } : null;
  }

  async create(streamId: string, label?: string): Promise<{ streamKey: string; keyId: string }> {
    const kv = this.requireKv();
    const streamKey = generateKey();
    const hash = hashKey(streamKey);
    const record: StreamKeyRecord = {
      streamId,
      keyId: hash.slice(0, 12),
      createdAt: new Date().toISOString(),
      ...(label ? { label } : {}),
    };
    await kv.create(hash, encode(streamKeyRecord, record));
    // Usable on this replica at once; the others learn it from the watch.
    this.byHash.set(hash, record);
    this.logger.info({ streamId, keyId: record.keyId }, 'stream key created');
    return { streamKey, keyId: record.keyId };
  }

  /** Deletes the matching keys; returns how many, and how many live publishers on this replica were cut. */
  async revoke(match: {
    streamId?: string;
    streamKey?: string;
    keyId?: string;
  }): Promise<{ revoked: number; kicked: number }> {
    const kv = this.requireKv();
    const hashes: string[] = [];
    if (match.streamKey !== undefined) {
      const hash = hashKey(match.streamKey);
      if (this.byHash.has(hash)) hashes.push(hash);
    }
    for (const [hash, record] of this.byHash) {
      if (record.streamId === match.streamId || record.keyId === match.keyId) hashes.push(hash);
    }
    let kicked = 0;
    for (const hash of hashes) {
      const record = this.byHash.get(hash);
      // Locally first: the watch delivers the delete during the await below and would find nothing to count.
      kicked += this.removeLocal(hash);
      await kv.delete(hash);
      this.logger.info({ streamId: record?.streamId, keyId: record?.keyId }, 'stream key revoked');
    }
    return { revoked: hashes.length, kicked };
  }

  private requireKv(): KV {
    if (!this.kv) throw new Error('key store not started');
    return this.kv;
  }

  private removeLocal(hash: string): number {
    return this.byHash.delete(hash) ? this.onRevoked(hash) : 0;
  }

  /** Mirrors the bucket; resumes after the last revision seen if the watch ends (NATS restart). */
  private async watch(): Promise<void> {
    const kv = this.requireKv();
    if (!this.loaded) {
      // Everything up to the bucket's last revision at this moment is the initial state; the watch
      // (created after) delivers that revision or a newer one for its key.
      const lastSeq = (await kv.status()).streamInfo.state.last_seq;
      if (lastSeq === 0) this.markLoaded();
      else this.loadedAtRevision = lastSeq;
    }
    const iterator = await kv.watch(
      this.lastRevision > 0 ? { resumeFromRevision: this.lastRevision + 1 } : {},
    );
    this.watchIterator = iterator;
    void (async () => {
      for await (const entry of iterator) {
        this.lastRevision = entry.revision;
        if (entry.operation === 'PUT') {
          const decoded = decode(streamKeyRecord, entry.value);
          if (decoded.ok) this.byHash.set(entry.key, decoded.value);
          else
            this.logger.error(
              { key: entry.key, reason: decoded.reason },
              'invalid stream-keys record ignored',
            );
        } else {
          this.removeLocal(entry.key);
        }
        if (!this.loaded && entry.revision >= this.loadedAtRevision) this.markLoaded();
      }
      if (!this.stopped) {
        this.logger.warn('stream-keys watch ended, resuming');
        await retry(() => this.watch(), {
          what: 'stream-keys watch',
          logger: this.logger,
          attempts: Number.MAX_SAFE_INTEGER,
          isStopped: () => this.stopped,
        });
      }
    })();
  }

  private markLoaded(): void {
    this.loaded = true;
    this.logger.info({ keys: this.byHash.size }, 'stream keys loaded');
  }
}
