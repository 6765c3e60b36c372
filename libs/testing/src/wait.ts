// Waiting for facts, never for a fixed time: poll a condition until it holds or a deadline passes.
import { AssertionError } from 'node:assert';
import { createServer } from 'node:net';

export class WaitTimeoutError extends Error {
  constructor(what: string, timeoutMs: number, last?: unknown) {
    super(
      `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last: ${String(last)})`}`,
    );
    this.name = 'WaitTimeoutError';
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/**
 * Resolves with the first truthy value of `condition` (sync or async). Errors thrown by it count as "not yet"
 * (a server still starting, a file not there yet), except a failed assertion: a rule broken by anything seen
 * while waiting fails the test at once instead of being retried until something passes.
 */
export async function waitFor<T>(
  condition: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { timeoutMs = 10_000, intervalMs = 25, what = 'condition' }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      last = error instanceof Error ? error.message : error;
    }
    if (Date.now() > deadline) throw new WaitTimeoutError(what, timeoutMs, last);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Resolves when `promise` settles, or rejects after `timeoutMs` naming `what`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(what, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ports this process has handed out: the OS may offer a port again once its probe is closed. */
const handedOut = new Set<number>();

/**
 * A TCP port the OS says is free right now on 127.0.0.1, and not handed out before by this process (a
 * service given a port binds it a little later; meanwhile the OS could offer it to the next caller).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}
