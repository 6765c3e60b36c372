// Retry with exponential backoff and jitter, for JetStream calls that fail during a server restart or
// a leader election (facts.md: ~4.5 s on an R3 leader kill) and then succeed.
import type { Logger } from 'pino';

export interface RetryOptions {
  what: string;
  logger?: Logger;
  attempts?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stop retrying (and rethrow) when this returns true. */
  isStopped?: () => boolean;
}

export async function retry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { what, logger, attempts = 10, initialDelayMs = 100, maxDelayMs = 2000, isStopped } = options;
  let delay = initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= attempts || isStopped?.()) throw error;
      if (attempt === 1 || attempt % 10 === 0) {
        logger?.warn(
          { err: error instanceof Error ? error.message : error, attempt },
          `${what} failed, retrying`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay * (0.75 + Math.random() * 0.5)));
      delay = Math.min(maxDelayMs, delay * 2);
    }
  }
}
