// A test load balancer like a Kubernetes Service or a cloud L4 balancer: each new TCP connection goes to a
// random backend among those whose /readyz said 200 at the last poll; connections are never moved.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Backend {
  name: string;
  port: number;
  ready: boolean;
  /** Every /readyz body that said not ready (what the pod told the balancer). */
  notReadyReasons: string[];
}

export class RandomReadyBalancer {
  readonly backends: Backend[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private poller: NodeJS.Timeout | undefined;
  port = 0;

  constructor() {
    this.server = createServer((client) => this.route(client));
  }

  add(name: string, port: number): void {
    this.backends.push({ name, port, ready: false, notReadyReasons: [] });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    await this.poll();
    this.poller = setInterval(() => void this.poll(), 100);
  }

  url(room: string): string {
    return `ws://127.0.0.1:${this.port}/chat/${room}`;
  }

  async stop(): Promise<void> {
    clearInterval(this.poller);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async poll(): Promise<void> {
    await Promise.all(
      this.backends.map(async (b) => {
        try {
          const res = await fetch(`http://127.0.0.1:${b.port}/readyz`, { signal: AbortSignal.timeout(500) });
          b.ready = res.ok;
          if (!res.ok) b.notReadyReasons.push(await res.text());
        } catch {
          b.ready = false;
        }
      }),
    );
  }

  private route(client: Socket): void {
    const ready = this.backends.filter((b) => b.ready);
    // No ready backend: like most balancers, fail open to all of them.
    const pool = ready.length > 0 ? ready : this.backends;
    const backend = pool[Math.floor(Math.random() * pool.length)];
    if (!backend) {
      client.destroy();
      return;
    }
    const upstream = connect(backend.port, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).on('close', () => client.destroy());
    upstream.pipe(client).on('close', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }
}
