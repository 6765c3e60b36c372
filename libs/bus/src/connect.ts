// Connecting to NATS so that a server restart never crashes a service: reconnect forever with backoff
// and jitter, wait for the first connection, and log every status change once.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export interface BusOptions {
  servers: string[];
  /** Client name shown by the server (`nats server report connections`). */
  name: string;
  logger: Logger;
  /** The service's NATS user and password (each service has its own, with its own permissions). */
  user?: string | undefined;
  pass?: string | undefined;
}

export async function connectBus({ servers, name, logger, user, pass }: BusOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers,
    name,
    ...(user ? { user, pass: pass ?? '' } : {}),
    // A service keeps trying for as long as it lives; Kubernetes restarts it if it is truly stuck.
    maxReconnectAttempts: -1,
    // Keep reconnects quick: the failover budget is 2 s, a NATS restart should cost well under that.
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    // Detect a dead server connection within ~3 s (ping every 1 s, 2 missed pongs allowed).
    pingInterval: 1000,
    maxPingOut: 2,
    // On start-up, wait for NATS instead of failing: pods may start before the NATS StatefulSet.
    waitOnFirstConnect: true,
  });
  logger.info({ server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          logger.warn({ server: status.server }, 'NATS disconnected, reconnecting');
          break;
        case 'reconnect':
          logger.info({ server: status.server }, 'NATS reconnected');
          break;
        case 'error':
          logger.error({ err: status.error }, 'NATS connection error');
          break;
        default:
          break;
      }
    }
  })();
  return nc;
}
