// Graceful shutdown on SIGTERM/SIGINT: stop taking work, finish or hand off, drain NATS, exit.
// Steps run in the order given (a composition root lists them in reverse of creation), each bounded.
import type { Logger } from 'pino';

export interface ShutdownStep {
  name: string;
  run: () => Promise<void> | void;
  /** Upper bound for this step; the rest still runs if it overruns. */
  timeoutMs?: number;
}

export function installShutdown(
  logger: Logger,
  steps: ShutdownStep[],
  exit: (code: number) => void = (code) => process.exit(code),
) {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    let failed = false;
    for (const step of steps) {
      const timeoutMs = step.timeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(step.run),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`took longer than ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (error) {
        failed = true;
        logger.error({ step: step.name, err: (error as Error).message }, 'shutdown step failed');
      } finally {
        clearTimeout(timer);
      }
    }
    logger.info('stopped');
    logger.flush?.();
    exit(failed ? 1 : 0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  return { shutdown };
}
