// Following a JetStream stream for as long as the process lives, through the loss of any NATS node.
//
// An ordered consumer is one R1, in-memory consumer on one server. When that server dies (SIGKILL, OOM, a
// node lost without lame-duck mode), the consumer's open pull request dies with it and nothing tells the
// client (no disconnect if it is connected to another node): nats.js notices only by missed idle
// heartbeats (by default 15 s apart, two missed: 30-45 s), and its own re-creation stalled again (its
// reset pulls with the old consumer's pending count, a batch of a message or so; then nothing until the
// next missed heartbeats): ~90 s without a message, measured with nats.js 3.4 and nats-server 2.9. Its
// iterator can also end. A follower asks for heartbeats every second and replaces the consumer when it
// has shown no sign of life (a message, a heartbeat, a pull request expiring) for SILENT_TICKS heartbeats,
// when nats.js reports missed heartbeats, or when its iterator ends or fails: the new ordered consumer
// starts at the stream seq after the last message delivered, so nothing is skipped or delivered twice.
import {
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { retry } from './retry.js';

/**
 * Idle heartbeat asked of the server (ms): a followed subject that is quiet costs one small message per
 * period, and a dead consumer is replaced within about 2-4 periods.
 */
export const FOLLOW_HEARTBEAT_MS = 1000;
/** Watchdog ticks (one per heartbeat period) without a sign of life before the consumer is replaced. */
const SILENT_TICKS = 3;
/**
 * How long one try to create a consumer waits. With a node dead, nats-server 2.9 keeps placing about a
 * third of new R1 consumers on it for as long as it is down (measured: creates time out, the others take
 * milliseconds), so a short wait and another try beat nats.js's default 5 s.
 */
const CREATE_TIMEOUT_MS = 2000;

export interface FollowOptions {
  nc: NatsConnection;
  stream: string;
  filterSubjects: string | string[];
  /** Where the first consumer starts (default: everything the stream holds); later ones resume. */
  deliverPolicy?: (typeof DeliverPolicy)['All' | 'LastPerSubject' | 'New'];
  /**
   * Each message, in stream order, once. The next waits for a returned promise; an error thrown here is
   * not a consumer failure: it ends the follower and is rethrown (unhandled, as from a plain loop).
   */
  onMessage: (m: JsMsg) => void | Promise<void>;
  logger: Logger;
  /** Names the follower in logs (`room lobby`, `KV chat-nodes`). */
  what: string;
  heartbeatMs?: number;
}

export interface StreamFollower {
  /** The stream seq the next message will have at least (the last one delivered + 1). */
  readonly nextSeq: number;
  /** Consumers replaced so far (stalled, ended or failed). */
  readonly restarts: number;
  stop(): Promise<void>;
}

class HandlerError extends Error {}

interface Following {
  consumer: Consumer;
  messages: ConsumerMessages;
  /** Why the follower ended it (the watchdog, missed heartbeats). */
  reason?: string;
}

/**
 * Creates the first consumer (its errors reject, as `consumers.get` would), then follows the stream until
 * `stop()` or the connection closes, replacing the consumer whenever it stops delivering.
 */
export async function followStream(options: FollowOptions): Promise<StreamFollower> {
  const { nc, stream, logger, what } = options;
  const js = jetstream(nc, { timeout: CREATE_TIMEOUT_MS });
  const heartbeatMs = options.heartbeatMs ?? FOLLOW_HEARTBEAT_MS;
  let next = 0;
  let restarts = 0;
  let stopped = false;
  let current: Following | undefined;
  // The watchdog's view of the current consumer.
  let signs = false;
  let lastReceived = 0;
  let silent = 0;

  const open = async (): Promise<Following> => {
    const consumer = await js.consumers.get(stream, {
      filter_subjects: options.filterSubjects,
      ...(next > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: next }
        : { deliver_policy: options.deliverPolicy ?? DeliverPolicy.All }),
    });
    // Where the server placed the start (All, New, LastPerSubject): a replacement resumes from there.
    if (next === 0) next = (await consumer.info(true)).delivered.stream_seq + 1;
    const messages = await consumer.consume({
      idle_heartbeat: heartbeatMs,
      expires: Math.max(1000, 10 * heartbeatMs),
    });
    current = { consumer, messages };
    signs = false;
    lastReceived = 0;
    silent = 0;
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === 'heartbeats_missed') replace(messages, 'heartbeats missed');
        // From the server: an idle heartbeat, a pull request that expired, the consumer recreated.
        else if (s.type === 'heartbeat' || s.type === 'discard' || s.type === 'ordered_consumer_recreated')
          signs = true;
      }
    })();
    return current;
  };

  /** Ends the consumer's iterator; the loop then opens a new one from `next`. */
  const replace = (messages: ConsumerMessages, reason: string) => {
    if (current?.messages !== messages) return;
    current.reason = reason;
    messages.stop();
  };

  const watchdog = setInterval(() => {
    if (!current) return;
    const { messages } = current;
    const received = messages.getReceived();
    // Messages waiting for a slow onMessage are life too (the server sends no heartbeat while it delivers).
    if (signs || received !== lastReceived || messages.getPending() > 0) silent = 0;
    else silent++;
    signs = false;
    lastReceived = received;
    if (silent >= SILENT_TICKS) replace(messages, `silent for ${silent} heartbeats`);
  }, heartbeatMs);
  watchdog.unref();

  const deliver = async (messages: ConsumerMessages) => {
    for await (const m of messages) {
      // Already delivered (a replaced consumer's last messages can still be in its iterator).
      if (m.seq < next) continue;
      next = m.seq + 1;
      try {
        await options.onMessage(m);
      } catch (error) {
        throw new HandlerError(`${what}: message handler failed`, { cause: error });
      }
    }
  };

  /** Stopped, or the connection closing (or draining, at shutdown): its consumers end, and so does this. */
  const ended = () => stopped || nc.isClosed() || nc.isDraining();

  const run = async () => {
    for (let following = current; following && !ended(); ) {
      const { consumer, messages } = following;
      let reason: string;
      try {
        await deliver(messages);
        reason = following.reason ?? 'its iterator ended';
      } catch (error) {
        if (error instanceof HandlerError) {
          stopped = true;
          clearInterval(watchdog);
          messages.stop();
          throw error.cause;
        }
        reason = `failed: ${(error as Error).message}`;
      }
      current = undefined;
      if (ended()) break;
      // Best effort: the old consumer would go by itself (inactive threshold); its server may be gone.
      consumer.delete().catch(() => undefined);
      following = await retry(open, {
        what: `${what}: following ${stream}`,
        logger,
        attempts: Number.MAX_SAFE_INTEGER,
        initialDelayMs: 100,
        maxDelayMs: 5000,
        isStopped: ended,
      }).catch((error: unknown) => {
        if (!ended()) throw error;
        return undefined;
      });
      // Stopped while the new consumer was being made (or the connection closed: nothing to say then).
      if (ended()) following?.messages.stop();
      else {
        restarts++;
        logger.warn({ stream, what, reason, from: next }, 'consumer stopped delivering: replaced');
      }
    }
    clearInterval(watchdog);
  };

  try {
    await open();
  } catch (error) {
    clearInterval(watchdog);
    throw error;
  }
  void run();

  return {
    get nextSeq() {
      return next;
    },
    get restarts() {
      return restarts;
    },
    async stop() {
      stopped = true;
      clearInterval(watchdog);
      const messages = current?.messages;
      if (messages) await messages.close();
    },
  };
}
