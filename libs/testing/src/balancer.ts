// A TCP load balancer for the local fleet that behaves like a Kubernetes Service: each new connection goes
// to a backend drawn at random among those whose readiness check passes (not sticky: a client that
// reconnects may land anywhere), and bytes are relayed both ways until either side closes.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Backend {
  /** A name for logs ("ingest-1"). */
  name: string;
  host: string;
  port: number;
  /** HTTP URL whose 2xx means ready (the service's /readyz), as a readiness probe. */
  readyUrl: string;
}

export interface BalancerOptions {
  name: string;
  port: number;
  bind?: string;
  backends: Backend[];
  /** How often each backend's readiness is checked (a readiness probe's period). */
  probeIntervalMs?: number;
  onLine?: (line: string) => void;
}

export interface Balancer {
  readonly name: string;
  readonly port: number;
  /** How many backends it balances over. */
  readonly backends: number;
  /** Backends ready at the last probe. */
  ready(): Backend[];
  /** Connections sent to each backend so far, by name. */
  connections(): Record<string, number>;
  close(): Promise<void>;
}

export async function startTcpBalancer(options: BalancerOptions): Promise<Balancer> {
  const { name, port, bind = '127.0.0.1', backends, probeIntervalMs = 500, onLine } = options;
  const ready = new Set<Backend>();
  const counts: Record<string, number> = Object.fromEntries(backends.map((b) => [b.name, 0]));
  const open = new Set<Socket>();

  let closed = false;
  const probe = async (backend: Backend) => {
    // A probe that cannot answer within its period counts as not ready (kubelet's timeoutSeconds).
    const ok = await fetch(backend.readyUrl, { signal: AbortSignal.timeout(probeIntervalMs) })
      .then((res) => res.ok)
      .catch(() => false);
    if (ok === ready.has(backend) || closed) return;
    if (ok) ready.add(backend);
    else ready.delete(backend);
    onLine?.(
      `${name}: ${backend.name} ${ok ? 'ready' : 'not ready'}; ready: ${[...ready].map((b) => b.name).join(', ') || 'none'}`,
    );
  };
  const probeAll = () => Promise.all(backends.map(probe));
  await probeAll();
  const timer = setInterval(() => void probeAll(), probeIntervalMs);

  const server: Server = createServer((client) => {
    const candidates = [...ready];
    const backend = candidates[Math.floor(Math.random() * candidates.length)];
    if (!backend) {
      // No ready endpoint: a Service refuses the connection.
      client.destroy();
      return;
    }
    counts[backend.name] = (counts[backend.name] ?? 0) + 1;
    const upstream = connect({ host: backend.host, port: backend.port, noDelay: true });
    client.setNoDelay(true);
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bind, () => resolve());
  });
  return {
    name,
    port,
    backends: backends.length,
    ready: () => [...ready],
    connections: () => ({ ...counts }),
    async close() {
      closed = true;
      clearInterval(timer);
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
