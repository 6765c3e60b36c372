// Watching a KV bucket with every value validated by its schema: the callback sees only valid records;
// an invalid one is logged and skipped (a KV value has no dead-letter subject). The watch follows the
// bucket's stream with followStream, so it goes on through the loss of any NATS node: nats.js's own
// kv.watch is an ordered push consumer with 30 s heartbeats (blind for a minute or more when the node
// holding it dies, and over for good when its iterator ends).
import { DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { decode } from './codec.js';
import { followStream } from './follow.js';

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

const decoder = new TextDecoder();

/** A stored message of the bucket's stream as the KV entry nats.js would make of it. */
function watchEntry(bucket: string, prefix: string, m: JsMsg, isUpdate: boolean): KvWatchEntry {
  const rawKey = m.subject.substring(prefix.length);
  const operation = (
    m.headers?.get('Nats-Marker-Reason') === 'MaxAge' ? 'PURGE' : m.headers?.get('KV-Operation') || 'PUT'
  ) as KvWatchEntry['operation'];
  return {
    bucket,
    key: rawKey,
    rawKey,
    value: m.data,
    created: new Date(Math.floor(m.info.timestampNanos / 1e6)),
    revision: m.seq,
    delta: m.info.pending,
    operation,
    length: m.data.length,
    isUpdate,
    json: <T>() => JSON.parse(decoder.decode(m.data)) as T,
    string: () => decoder.decode(m.data),
  };
}

/** Starts the watch; returns a handle to stop it. */
export async function watchKv<S extends z.ZodType>(options: KvWatchOptions<S>): Promise<KvWatch> {
  const kv = await new Kvm(options.nc).open(options.bucket);
  const status = await kv.status();
  const empty = options.updatesOnly || status.values === 0;
  let seenInitial = Boolean(empty);
  let markInitialized!: () => void;
  const initialized = new Promise<void>((resolve) => {
    markInitialized = resolve;
  });
  if (empty) markInitialized();
  if (options.initialValuesTimeoutMs !== undefined) {
    const timeout = setTimeout(() => {
      options.logger.warn({ bucket: options.bucket }, 'KV watch: current values incomplete, going on');
      markInitialized();
    }, options.initialValuesTimeoutMs);
    timeout.unref();
    void initialized.then(() => clearTimeout(timeout));
  }
  const prefix = `$KV.${options.bucket}.`;
  const follower = await followStream({
    nc: options.nc,
    stream: status.streamInfo.config.name,
    filterSubjects: `${prefix}>`,
    // The current value of each key, then every change (or only changes from now on).
    deliverPolicy: options.updatesOnly ? DeliverPolicy.New : DeliverPolicy.LastPerSubject,
    logger: options.logger,
    what: `KV ${options.bucket}`,
    onMessage: async (m) => {
      const entry = watchEntry(options.bucket, prefix, m, seenInitial);
      // The current values end with delta 0 (nothing pending); anything after is an update.
      if (entry.delta === 0 || entry.isUpdate) {
        seenInitial = true;
        markInitialized();
      }
      if (entry.operation !== 'PUT') {
        options.onDelete?.(entry.key);
        return;
      }
      const decoded = decode(options.schema, entry.value);
      if (decoded.ok) await options.onPut(decoded.value, entry);
      else
        options.logger.error(
          { bucket: options.bucket, key: entry.key, reason: decoded.reason },
          'invalid KV record ignored',
        );
    },
  });
  return { stop: () => void follower.stop(), initialized };
}
