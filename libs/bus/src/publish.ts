// Typed, reliable publishing to JetStream. Events are validated against their schema, published in the
// order given, and retried with backoff through NATS outages; the event id is the JetStream message id, so
// a retry after a lost ack is deduplicated by the server.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { encode } from './codec.js';

export interface OrderedPublisherOptions {
  js: JetStreamClient;
  logger: Logger;
  /** Give up on one message after this long (it is logged as lost). */
  giveUpAfterMs?: number;
  /** Most messages waiting while NATS is down; beyond it the oldest are dropped and logged. */
  maxQueued?: number;
}

/** The longest wait between two tries of one publish. */
const MAX_RETRY_DELAY_MS = 500;

interface Pending {
  subject: string;
  data: Uint8Array;
  msgID: string;
  queuedAt: number;
  resolve: (ok: boolean) => void;
}

export class OrderedPublisher {
  private readonly queue: Pending[] = [];
  private running = false;
  private closed = false;
  private readonly giveUpAfterMs: number;
  private readonly maxQueued: number;

  constructor(private readonly options: OrderedPublisherOptions) {
    this.giveUpAfterMs = options.giveUpAfterMs ?? 5 * 60_000;
    this.maxQueued = options.maxQueued ?? 10_000;
  }

  /** Validates now (throws on a programming error); resolves true once stored, false if given up. */
  publish<S extends z.ZodType>(
    schema: S,
    subject: string,
    value: z.input<S>,
    msgID: string,
  ): Promise<boolean> {
    const data = encode(schema, value);
    return new Promise((resolve) => {
      this.queue.push({ subject, data, msgID, queuedAt: Date.now(), resolve });
      if (this.queue.length > this.maxQueued) {
        const dropped = this.queue.shift();
        this.options.logger.error(
          { subject: dropped?.subject },
          'publish queue full, dropped the oldest event',
        );
        dropped?.resolve(false);
      }
      void this.drain();
    });
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Waits until everything queued is stored or given up (bounded by `timeoutMs`). */
  async flush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length > 0 || this.running) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.closed = true;
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let delay = 100;
    try {
      while (this.queue.length > 0) {
        const next = this.queue[0] as Pending;
        try {
          await this.options.js.publish(next.subject, next.data, { msgID: next.msgID, timeout: 2000 });
          this.queue.shift();
          next.resolve(true);
          delay = 100;
        } catch (error) {
          if (this.closed || Date.now() - next.queuedAt > this.giveUpAfterMs) {
            this.queue.shift();
            this.options.logger.error({ subject: next.subject, err: (error as Error).message }, 'event lost');
            next.resolve(false);
            continue;
          }
          if (delay === 100) {
            this.options.logger.warn(
              { subject: next.subject, err: (error as Error).message },
              'publish failed, retrying',
            );
          }
          await new Promise((r) => setTimeout(r, delay));
          // At most 500 ms between tries: a stream's leader election (a NATS node lost) ends without notice,
          // and every moment the next try waits past it is a moment viewers wait for the segment.
          delay = Math.min(MAX_RETRY_DELAY_MS, delay * 2);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/**
 * Core NATS (fire and forget: heartbeats, part announcements). Validated like every message; skipped, and
 * false, once the connection is draining or closed: nats.js throws there, and a shutdown racing a job's
 * last bytes must not become an uncaught exception.
 */
export function publishCore<S extends z.ZodType>(
  nc: Pick<NatsConnection, 'publish' | 'isClosed' | 'isDraining'>,
  schema: S,
  subject: string,
  value: z.input<S>,
): boolean {
  const data = encode(schema, value);
  if (nc.isClosed() || nc.isDraining()) return false;
  nc.publish(subject, data);
  return true;
}
