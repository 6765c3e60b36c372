// Typed consumption: a durable JetStream pull consumer (or a core subscription) whose every message is
// decoded and validated before the handler sees it. Invalid -> dead letter + ack; handler error -> retried
// with a delay, then dead-lettered after maxDeliver attempts. A bad message never stops the consumer.
// A handler may also hold its message (meta.hold()): not acked when the handler returns, kept in progress
// until the holder acks it, and handed back for redelivery when the consumer stops.
import { AckPolicy, DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
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

/** How long the server waits for an ack before it redelivers a message (also what a hold renews). */
const ACK_WAIT_MS = 10_000;
/** How long one pull request waits on the server before the client sends a fresh one. */
const PULL_EXPIRES_MS = 5000;
/** The server's heartbeat while a pull has nothing to deliver; two missed ones make the client pull again. */
const PULL_HEARTBEAT_MS = 1000;
/** How soon a held message handed back at stop is delivered again (see stop()). */
const HAND_BACK_DELAY_MS = 100;
/** The longest delay before a failed message is tried again. */
export const MAX_RETRY_DELAY_MS = 5000;

/**
 * Delay before delivery `attempt + 1` of a message whose handler failed: 250 ms doubling per attempt, at
 * most MAX_RETRY_DELAY_MS (uncapped, the tenth retry would be minutes away and the last hours), then a
 * random 50-100 % of that so that messages which failed together are not all retried at the same moment.
 */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** Math.max(0, attempt));
  return Math.round(ceiling * (0.5 + random() * 0.5));
}

/** A message its handler kept (meta.hold()): the holder acks it once it is dealt with. */
export interface HeldMessage {
  /** Done with: acked, never delivered again. */
  ack(): void;
}

export interface ConsumeMeta {
  subject: string;
  seq: number;
  redelivered: boolean;
  /** How many times this message has been delivered, this time included. */
  deliveryCount: number;
  /**
   * Keeps the message unacked after the handler returns, in progress (the server is told so before its ack
   * wait runs out, so it is not redelivered meanwhile), until the holder acks it. When the consumer stops (a
   * replica losing its lease, a shutdown) every held message is handed back at once for redelivery, to this
   * consumer's next holder. Held messages count against the consumer's max_ack_pending (1000).
   */
  hold(): HeldMessage;
}

export interface ConsumeOptions<S extends z.ZodType> {
  nc: NatsConnection;
  logger: Logger;
  stream: string;
  /** Durable consumer name: survives restarts, shared by replicas (each message to one of them). */
  durable: string;
  filterSubject: string;
  schema: S;
  handler: (value: z.output<S>, meta: ConsumeMeta) => Promise<void>;
  maxDeliver?: number;
  /** Where a new durable starts; 'new' skips the history. */
  deliver?: 'all' | 'new';
}

export interface Consumption {
  stop(): Promise<void>;
}

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
        // Handlers are quick; 10 s without an ack (or a held message's progress) means the process is stuck or gone.
        ack_wait: ACK_WAIT_MS * 1_000_000,
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
  const held = new Set<JsMsg>();
  // One timer for every held message: each is marked in progress well within its ack wait.
  let progress: NodeJS.Timeout | undefined;
  const keepHeld = () => {
    if (held.size === 0) {
      clearInterval(progress);
      progress = undefined;
    } else
      progress ??= setInterval(() => {
        for (const m of held) m.working();
      }, ACK_WAIT_MS / 3);
  };
  const done = (async () => {
    for await (const m of messages) {
      const { decoded, stored } = decodeOrDeadLetter(nc, log, schema, m, durable);
      if (!decoded.ok) {
        // Stored in LIVE_DLQ before the original is given up, so a crash in between loses nothing.
        await stored;
        m.term(decoded.reason);
        continue;
      }
      let kept = false;
      try {
        await handler(decoded.value, {
          subject: m.subject,
          seq: m.seq,
          redelivered: m.redelivered,
          deliveryCount: m.info.deliveryCount,
          hold: () => {
            kept = true;
            held.add(m);
            keepHeld();
            return {
              ack: () => {
                if (!held.delete(m)) return;
                keepHeld();
                m.ack();
              },
            };
          },
        });
        if (!kept) m.ack();
      } catch (error) {
        // A handler that held its message and then failed gives it up: retried like any failure.
        if (kept) {
          held.delete(m);
          keepHeld();
        }
        const reason = `handler failed: ${(error as Error).message}`;
        if (m.info.deliveryCount >= maxDeliver) {
          await deadLetter(nc, log, { subject: m.subject, reason, data: m.data, consumer: durable });
          m.term(reason);
        } else {
          log.warn(
            { subject: m.subject, err: (error as Error).message, attempt: m.info.deliveryCount },
            'handler failed, will retry',
          );
          m.nak(retryDelayMs(m.info.deliveryCount));
        }
      }
    }
  })();
  return {
    async stop() {
      await messages.close();
      await done;
      // Handed back now rather than after their ack wait: the next holder of this consumer takes them over.
      // With a short delay: an immediate NAK makes nats-server 2.9 rewind the consumer to that message, and
      // deliver again the messages after it that were already acked (libs/bus/test: the held message test).
      for (const m of held) m.nak(HAND_BACK_DELAY_MS);
      held.clear();
      keepHeld();
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
