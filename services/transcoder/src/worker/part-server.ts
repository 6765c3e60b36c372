// The worker's part server: the LL-HLS parts (and init segments) its jobs cut, kept in memory for a few
// seconds and served over HTTP to the origin, which fetches each one when the part event announces it.
// Media bytes thus never go through NATS, and parts never go to GCS (five objects per second per rendition
// would cost more than the segments themselves); whole segments still go to storage for plain HLS.
// Paths: /parts/<streamId>/<epoch>/<rendition>/(init.mp4 | part_<n>.m4s), the layout of the LL playlists.
import { createServer } from 'node:http';
import { type HttpListener, listenHttp, requestTarget } from '@live/runtime';
import type { Logger } from 'pino';

export interface PartServerOptions {
  /** Address the origin uses to reach this worker (a pod IP on GKE, 127.0.0.1 locally). */
  advertisedHost: string;
  bindHost: string;
  /** 0 = any free port (local runs start several workers). */
  port: number;
  /** How long a part stays fetchable after it is cut: the origin fetches within milliseconds. */
  keepMs: number;
  logger: Logger;
}

export class PartServer {
  private readonly entries = new Map<string, { bytes: Buffer; expires: number }>();
  private listener: HttpListener | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly o: PartServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      // A bad target (`GET /%`) is a 400, never an exception out of this handler (it ended the worker).
      const target = requestTarget(req, res, this.o.logger);
      if (!target) return;
      const { path } = target;
      const entry = path.startsWith('/parts/') ? this.entries.get(path.slice('/parts/'.length)) : undefined;
      if (req.method !== 'GET' || !entry) {
        res.writeHead(req.method === 'GET' ? 404 : 405).end();
        return;
      }
      res
        .writeHead(200, { 'content-type': 'video/mp4', 'content-length': entry.bytes.length })
        .end(entry.bytes);
    });
    this.listener = await listenHttp(server, this.o.port, this.o.bindHost, this.o.logger);
    // Expired parts leave every second; at most keepMs + 1 s of parts is held.
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [key, entry] of this.entries) if (entry.expires <= now) this.entries.delete(key);
    }, 1000);
    this.sweeper.unref();
    this.o.logger.info({ port: this.listener.port }, 'part server listening (/parts/...)');
  }

  /** Keeps `bytes` under `key` (`<streamId>/<epoch>/<rendition>/<file>`) and returns the URL to announce. */
  put(key: string, bytes: Buffer, keepMs = this.o.keepMs): string {
    this.entries.set(key, { bytes, expires: Date.now() + keepMs });
    return this.url(key);
  }

  /** Lets everything under `prefix` expire after keepMs (a job ended; the origin may still be fetching). */
  expire(prefix: string): void {
    const expires = Date.now() + this.o.keepMs;
    for (const [key, entry] of this.entries)
      if (key.startsWith(prefix)) entry.expires = Math.min(entry.expires, expires);
  }

  url(key: string): string {
    if (!this.listener) throw new Error('part server not started');
    return `http://${this.o.advertisedHost}:${this.listener.port}/parts/${key}`;
  }

  get size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.listener?.close();
  }
}
