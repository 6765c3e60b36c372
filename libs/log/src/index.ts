// @live/log: the pino root logger, made once in each service's main.ts and handed down with child().
// Lines are JSON that Google Cloud Logging understands: `severity`, `message`, `time`.
import { pino } from 'pino';

export type Logger = pino.Logger;
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

// Cloud Logging's LogSeverity names for pino's levels.
const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

export interface LoggerOptions {
  service: string;
  level?: LogLevel;
  /** Where lines go; stdout by default (tests pass a stream to read them back). */
  destination?: pino.DestinationStream;
}

export function createLogger({ service, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { service },
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }),
      },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
