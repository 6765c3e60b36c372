// Typed consumption: a durable JetStream pull consumer (or a core subscription) whose every message is
// decoded and validated before the handler sees it. Invalid -> dead letter + ack; handler error -> retried
// with a delay, then dead-lettered after maxDeliver attempts. A bad message never stops the consumer.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { decode } from './codec.js';
import { deadLetter } from './deadletter.js';
import { retry } from './retry.js';

/** The one place the rule lives: an invalid message goes to live.dlq.<subject> with the reason. */
function decodeOrDeadLetter<S extends z.ZodType>(
  nc: NatsConnection,
  logger: Logger,
  schema: S,
  m: { subject: string; data: Uint8Array },
  consumer: string,
): { decoded: ReturnType<typeof decode<S>>; stored: Promise<void> } {
  const decoded = decode(schema, m.data);
  const stored = decoded.ok
    ? Promise.resolve()
    : deadLetter(nc, logger, { subject: m.subject, reason: decoded.reason, data: m.data, consumer });
  return { decoded, stored };
}

export interface ConsumeOptions<S extends z.ZodType> {
  nc: NatsConnection;
  logger: Logger;
  stream: string;
  /** Durable consumer name: survives restarts, shared by replicas (each message to one of them). */
  durable: string;
  filterSubject: string;
  schema: S;
  handler: (
    value: z.output<S>,
    meta: { subject: string; seq: number; redelivered: boolean },
  ) => Promise<void>;
  maxDeliver?: number;
  /** Where a new durable starts; 'new' skips the history. */
  deliver?: 'all' | 'new';
}

export interface Consumption {
  stop(): Promise<void>;
}

/** How long one pull request waits on the server before the client sends a fresh one. */
const PULL_EXPIRES_MS = 5000;
/** The server's heartbeat while a pull has nothing to deliver; two missed ones make the client pull again. */
const PULL_HEARTBEAT_MS = 1000;

export async function consume<S extends z.ZodType>(options: ConsumeOptions<S>): Promise<Consumption> {
  const { nc, logger, stream, durable, filterSubject, schema, handler } = options;
  const maxDeliver = options.maxDeliver ?? 5;
  const log = logger.child({ consumer: durable });
  await retry(
    async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(stream, {
        durable_name: durable,
        filter_subject: filterSubject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: options.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
        max_deliver: maxDeliver,
        // Handlers are quick; 10 s without an ack means the process is stuck or gone.
        ack_wait: 10_000_000_000,
      });
    },
    { what: `consumer ${durable}`, logger: log, attempts: 40 },
  );
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  // A pull request lives on the server that leads the consumer. When that server dies (a NATS node lost in
  // a cluster) the request dies with it, while this client, connected to another node, sees no disconnect:
  // only missed heartbeats tell it to pull again (nats.js does after two). Its default, half a 30 s expiry,
  // left a consumer silent for 30-50 s after a node loss (docs/architecture.md, the local runner).
  const messages = await consumer.consume({ expires: PULL_EXPIRES_MS, idle_heartbeat: PULL_HEARTBEAT_MS });
  const done = (async () => {
    for await (const m of messages) {
      const { decoded, stored } = decodeOrDeadLetter(nc, log, schema, m, durable);
      if (!decoded.ok) {
        // Stored in LIVE_DLQ before the original is given up, so a crash in between loses nothing.
        await stored;
        m.term(decoded.reason);
        continue;
      }
      try {
        await handler(decoded.value, { subject: m.subject, seq: m.seq, redelivered: m.redelivered });
        m.ack();
      } catch (error) {
        const reason = `handler failed: ${(error as Error).message}`;
        if (m.info.deliveryCount >= maxDeliver) {
          await deadLetter(nc, log, { subject: m.subject, reason, data: m.data, consumer: durable });
          m.term(reason);
        } else {
          log.warn(
            { subject: m.subject, err: (error as Error).message, attempt: m.info.deliveryCount },
            'handler failed, will retry',
          );
          m.nak(250 * 2 ** m.info.deliveryCount);
        }
      }
    }
  })();
  return {
    async stop() {
      await messages.close();
      await done;
    },
  };
}

/** Core NATS subscription (health, heartbeats) with the same validation and dead-lettering. */
export function subscribeValidated<S extends z.ZodType>(options: {
  nc: NatsConnection;
  logger: Logger;
  subject: string;
  schema: S;
  name: string;
  handler: (value: z.output<S>, subject: string) => void;
  queue?: string;
}): Subscription {
  const { nc, logger, subject, schema, name, handler, queue } = options;
  return nc.subscribe(subject, {
    ...(queue ? { queue } : {}),
    callback: (error, m) => {
      if (error) {
        logger.error({ err: error.message, subject }, 'subscription error');
        return;
      }
      const { decoded } = decodeOrDeadLetter(nc, logger, schema, m, name);
      if (!decoded.ok) return;
      try {
        handler(decoded.value, m.subject);
      } catch (e) {
        logger.error({ err: (e as Error).message, subject: m.subject }, 'handler failed');
      }
    },
  });
}
