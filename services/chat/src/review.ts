// The optional message review hook: each message is a NATS request on live.chat.review.<room>; an external
// moderation service (a spam or toxicity model) answers allow, deny or rewrite within the timeout. Silence,
// no responder or a malformed answer gets the configured fallback, so a broken hook cannot stop the chat.
import { decode, encode } from '@live/bus';
import {
  type ChatAuthor,
  type ChatReviewReply,
  chatReviewReply,
  chatReviewRequest,
  subjects,
} from '@live/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from 'pino';

export interface ReviewOptions {
  enabled: boolean;
  timeoutMs: number;
  fallback: 'allow' | 'deny';
}

export function createReview(nc: NatsConnection, logger: Logger, options: ReviewOptions) {
  const fallback: ChatReviewReply =
    options.fallback === 'allow' ? { action: 'allow' } : { action: 'deny', reason: 'review unavailable' };
  let failures = 0;
  return async (room: string, user: ChatAuthor, text: string): Promise<ChatReviewReply> => {
    if (!options.enabled) return { action: 'allow' };
    try {
      const reply = await nc.request(
        subjects.chatReview(room),
        encode(chatReviewRequest, { room, user, text }),
        {
          timeout: options.timeoutMs,
        },
      );
      const decoded = decode(chatReviewReply, reply.data);
      if (decoded.ok) return decoded.value;
      logger.warn({ reason: decoded.reason }, 'review hook answered something invalid: fallback');
    } catch (error) {
      // One line per 100 failures: a hook that is down would otherwise log every message.
      if (failures++ % 100 === 0)
        logger.warn(
          { err: (error as Error).message, failures, fallback: options.fallback },
          'review hook did not answer: fallback',
        );
    }
    return fallback;
  };
}
