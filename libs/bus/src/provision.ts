// Idempotent provisioning of the platform's JetStream streams and KV buckets at start-up.
// Safe to run from every service and replica at once: "already exists" is success, and settings we own
// (age, dedupe window) are brought back to the contract. Retries through JetStream's unavailable windows
// (a restarting server or a leader election reports "jetstream is not enabled" for a few seconds).
import { bucketDefinitions, streamDefinitions } from '@live/contracts';
import { type JetStreamManager, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { retry } from './retry.js';

export interface ProvisionOptions {
  /** Replicas for streams and buckets: 1 locally, 3 on a production cluster. */
  replicas?: number;
}

async function ensureStreams(jsm: JetStreamManager, replicas: number, logger: Logger): Promise<void> {
  for (const def of streamDefinitions) {
    const config = {
      name: def.name,
      subjects: def.subjects,
      description: def.description,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: def.maxAgeNs,
      duplicate_window: def.duplicateWindowNs,
      max_msgs_per_subject: def.maxMsgsPerSubject ?? -1,
    };
    const existing = await jsm.streams.info(def.name).catch((error: unknown) => {
      if (error instanceof Error && /stream not found/i.test(error.message)) return null;
      throw error;
    });
    if (!existing) {
      await jsm.streams.add(config);
      logger.info({ stream: def.name }, 'created JetStream stream');
    } else if (
      existing.config.max_age !== def.maxAgeNs ||
      existing.config.duplicate_window !== def.duplicateWindowNs ||
      existing.config.max_msgs_per_subject !== (def.maxMsgsPerSubject ?? -1) ||
      existing.config.subjects.join() !== def.subjects.join()
    ) {
      await jsm.streams.update(def.name, { ...existing.config, ...config });
      logger.info({ stream: def.name }, 'updated JetStream stream to the contract');
    }
  }
}

export async function provision(
  nc: NatsConnection,
  logger: Logger,
  options: ProvisionOptions = {},
): Promise<void> {
  const replicas = options.replicas ?? 1;
  await retry(
    async () => {
      const jsm = await jetstreamManager(nc);
      await ensureStreams(jsm, replicas, logger);
      const kvm = new Kvm(nc);
      for (const bucket of bucketDefinitions) {
        await kvm.create(bucket.name, {
          history: bucket.history,
          replicas,
          description: bucket.description,
          ...(bucket.ttlMs ? { ttl: bucket.ttlMs } : {}),
        });
      }
    },
    { what: 'JetStream provisioning', logger, attempts: 40 },
  );
}
