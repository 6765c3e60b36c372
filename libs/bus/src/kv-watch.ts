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
}

/** Starts the watch; returns a handle to stop it. */
export async function watchKv<S extends z.ZodType>(options: KvWatchOptions<S>): Promise<{ stop(): void }> {
  const kv = await new Kvm(options.nc).open(options.bucket);
  const iterator = await kv.watch(options.updatesOnly ? { include: KvWatchInclude.UpdatesOnly } : {});
  void (async () => {
    for await (const entry of iterator) {
      if (entry.operation !== 'PUT') continue;
      const decoded = decode(options.schema, entry.value);
      if (decoded.ok) await options.onPut(decoded.value, entry);
      else
        options.logger.error(
          { bucket: options.bucket, key: entry.key, reason: decoded.reason },
          'invalid KV record ignored',
        );
    }
  })();
  return iterator;
}
