// Dead letters: a message that fails validation goes to live.dlq.<original subject> (stored in LIVE_DLQ)
// with the reason, is logged once, and never crashes the consumer.
import { subjects } from '@live/contracts';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { z } from 'zod';
import { encode, text } from './codec.js';
import { publishCore } from './publish.js';

export const deadLetterSchema = z.object({
  subject: z.string(),
  reason: z.string(),
  /** The original payload as text, cut at 64 KiB. */
  payload: z.string(),
  consumer: z.string(),
  at: z.iso.datetime(),
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;

const MAX_PAYLOAD_CHARS = 64 * 1024;

export async function deadLetter(
  nc: NatsConnection,
  logger: Logger,
  letter: { subject: string; reason: string; data: Uint8Array; consumer: string },
): Promise<void> {
  const body: DeadLetter = {
    subject: letter.subject,
    reason: letter.reason,
    payload: text(letter.data).slice(0, MAX_PAYLOAD_CHARS),
    consumer: letter.consumer,
    at: new Date().toISOString(),
  };
  logger.warn(
    { subject: letter.subject, reason: letter.reason, consumer: letter.consumer },
    'invalid message dead-lettered',
  );
  const dlqSubject = subjects.deadLetter(letter.subject);
  try {
    await jetstream(nc).publish(dlqSubject, encode(deadLetterSchema, body), { timeout: 2000 });
  } catch (error) {
    // JetStream unavailable: still make it visible to `nats sub 'live.dlq.>'`.
    publishCore(nc, deadLetterSchema, dlqSubject, body);
    logger.error(
      { err: (error as Error).message, subject: dlqSubject },
      'dead letter not stored in LIVE_DLQ',
    );
  }
}
