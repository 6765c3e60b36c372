// Watching a KV bucket with every value validated by its schema: the callback sees only valid records;
// an invalid one is logged and skipped (a KV value has no dead-letter subject).
import { Kvm, type KvWatchEntry, KvWatchInclude } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { decode } from './codec.js';

export interface KvWatchOptions<S extends z.ZodType> {
  nc: NatsConnection;
  logger: Logger;
  bucket: string;
  schema: S;
  /** Only changes from now on (default: the current values first, then changes). */
  updatesOnly?: boolean;
  onPut: (value: z.output<S>, entry: KvWatchEntry) => void | Promise<void>;
  /** A key deleted or purged (default: ignored). */
  onDelete?: (key: string) => void;
  /**
   * For a bucket whose entries expire (a TTL): `initialized` resolves after this long (ms, logged) even if
   * the end of the current values never came, which happens when the last of them expire between counting
   * them and receiving them. Default: no limit.
   */
  initialValuesTimeoutMs?: number;
}

export interface KvWatch {
  stop(): void;
  /** Resolves once the bucket's current values have been seen (at once for updatesOnly or an empty bucket). */
  readonly initialized: Promise<void>;
}

/** Starts the watch; returns a handle to stop it. */
export async function watchKv<S extends z.ZodType>(options: KvWatchOptions<S>): Promise<KvWatch> {
  const kv = await new Kvm(options.nc).open(options.bucket);
  const empty = options.updatesOnly || (await kv.status()).values === 0;
  let markInitialized!: () => void;
  const initialized = new Promise<void>((resolve) => {
    markInitialized = resolve;
  });
  if (empty) markInitialized();
  const iterator = await kv.watch(options.updatesOnly ? { include: KvWatchInclude.UpdatesOnly } : {});
  if (options.initialValuesTimeoutMs !== undefined) {
    const timeout = setTimeout(() => {
      options.logger.warn({ bucket: options.bucket }, 'KV watch: current values incomplete, going on');
      markInitialized();
    }, options.initialValuesTimeoutMs);
    timeout.unref();
    void initialized.then(() => clearTimeout(timeout));
  }
  void (async () => {
    for await (const entry of iterator) {
      // The initial values end with delta 0; anything after is an update.
      if (entry.delta === 0 || entry.isUpdate) markInitialized();
      if (entry.operation !== 'PUT') {
        options.onDelete?.(entry.key);
        continue;
      }
      const decoded = decode(options.schema, entry.value);
      if (decoded.ok) await options.onPut(decoded.value, entry);
      else
        options.logger.error(
          { bucket: options.bucket, key: entry.key, reason: decoded.reason },
          'invalid KV record ignored',
        );
    }
  })();
  return { stop: () => iterator.stop(), initialized };
}
