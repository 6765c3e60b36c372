// A Google Cloud Storage JSON API emulator for tests, speaking the subset the official client uses here,
// with real semantics: multipart and resumable (multi-chunk, 308 + Range) uploads, media download,
// delete, generations with ifGenerationMatch preconditions (412), CRC32C/MD5 in object resources so the
// client's own validation runs, and injectable 503s to exercise retries. Point the client at it with
// apiEndpoint (or STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT).
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface EmulatedObject {
  data: Buffer;
  contentType: string;
  cacheControl: string | undefined;
  generation: number;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Buffer): string {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

interface Session {
  bucket: string;
  name: string;
  metadata: Record<string, unknown>;
  chunks: Buffer[];
  received: number;
  ifGenerationMatch: string | null;
}

export class GcsEmulator {
  readonly objects = new Map<string, EmulatedObject>();
  readonly requests: string[] = [];
  /** The next N requests whose path matches get a 503 (to test retries). */
  failNext: { pattern: RegExp; count: number } | null = null;
  private readonly sessions = new Map<string, Session>();
  private server: Server | undefined;
  private generation = 1;
  url = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      void this.handle(req, res).catch((error: Error) =>
        this.json(res, 500, { error: { code: 500, message: error.message } }),
      );
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this.url;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }

  private key = (bucket: string, name: string) => `${bucket}/${name}`;

  private resource(bucket: string, name: string, o: EmulatedObject) {
    return {
      kind: 'storage#object',
      bucket,
      name,
      id: `${bucket}/${name}/${o.generation}`,
      generation: String(o.generation),
      metageneration: '1',
      size: String(o.data.length),
      contentType: o.contentType,
      ...(o.cacheControl ? { cacheControl: o.cacheControl } : {}),
      md5Hash: createHash('md5').update(o.data).digest('base64'),
      crc32c: crc32c(o.data),
    };
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  }

  private async body(req: IncomingMessage): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  /** Stores an object unless the precondition fails; returns the HTTP status. */
  private store(
    bucket: string,
    name: string,
    data: Buffer,
    metadata: Record<string, unknown>,
    ifGenerationMatch: string | null,
  ) {
    const existing = this.objects.get(this.key(bucket, name));
    if (ifGenerationMatch !== null && String(existing?.generation ?? 0) !== ifGenerationMatch) return null;
    const object: EmulatedObject = {
      data,
      contentType: String(metadata.contentType ?? 'application/octet-stream'),
      cacheControl: metadata.cacheControl === undefined ? undefined : String(metadata.cacheControl),
      generation: this.generation++,
    };
    this.objects.set(this.key(bucket, name), object);
    return object;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (this.failNext && this.failNext.count > 0 && this.failNext.pattern.test(url.pathname)) {
      this.failNext.count--;
      await this.body(req);
      this.json(res, 503, { error: { code: 503, message: 'injected: service unavailable' } });
      return;
    }
    const ifGen = url.searchParams.get('ifGenerationMatch');
    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
    const object = /^\/(?:download\/)?storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname);

    // Uploads: POST /upload/storage/v1/b/<bucket>/o?uploadType=multipart|resumable&name=...
    if (upload && req.method === 'POST') {
      const bucket = decodeURIComponent(upload[1] as string);
      const type = url.searchParams.get('uploadType');
      const body = await this.body(req);
      if (type === 'multipart') {
        const boundary = /boundary="?([^";]+)"?/.exec(String(req.headers['content-type']))?.[1];
        if (!boundary) return this.json(res, 400, { error: { code: 400, message: 'no multipart boundary' } });
        const parts = body
          .toString('latin1')
          .split(`--${boundary}`)
          .slice(1, -1)
          .map((p) => p.replace(/^\r\n/, ''));
        const [metaPart, mediaPart] = parts.map((p) => {
          const split = p.indexOf('\r\n\r\n');
          return {
            headers: p.slice(0, split),
            body: Buffer.from(p.slice(split + 4).replace(/\r\n$/, ''), 'latin1'),
          };
        });
        const metadata = JSON.parse(metaPart?.body.toString('utf8') ?? '{}') as Record<string, unknown>;
        const contentType = /content-type:\s*([^\r\n]+)/i.exec(mediaPart?.headers ?? '')?.[1];
        const name = String(metadata.name ?? url.searchParams.get('name'));
        const object = this.store(
          bucket,
          name,
          mediaPart?.body ?? Buffer.alloc(0),
          { contentType, ...metadata },
          ifGen,
        );
        if (!object) return this.json(res, 412, { error: { code: 412, message: 'Precondition Failed' } });
        return this.json(res, 200, this.resource(bucket, name, object));
      }
      if (type === 'resumable') {
        const metadata =
          body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
        const name = String(metadata.name ?? url.searchParams.get('name'));
        const id = randomUUID();
        this.sessions.set(id, { bucket, name, metadata, chunks: [], received: 0, ifGenerationMatch: ifGen });
        res
          .writeHead(200, {
            location: `${this.url}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&upload_id=${id}`,
          })
          .end();
        return;
      }
    }

    // Resumable chunks: PUT .../o?uploadType=resumable&upload_id=ID with Content-Range.
    if (upload && req.method === 'PUT') {
      const session = this.sessions.get(url.searchParams.get('upload_id') ?? '');
      const body = await this.body(req);
      if (!session) return this.json(res, 404, { error: { code: 404, message: 'no such upload session' } });
      const range = String(req.headers['content-range'] ?? '');
      const status = /^bytes \*\/(\d+|\*)$/.exec(range);
      const chunk = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(range);
      if (chunk) {
        const start = Number(chunk[1]);
        if (start !== session.received) {
          // Out of order: tell the client what we have.
        } else {
          session.chunks.push(body);
          session.received += body.length;
        }
      }
      const total = chunk?.[3] ?? status?.[1];
      if (total && total !== '*' && session.received >= Number(total)) {
        this.sessions.delete(url.searchParams.get('upload_id') ?? '');
        const object = this.store(
          session.bucket,
          session.name,
          Buffer.concat(session.chunks),
          session.metadata,
          session.ifGenerationMatch,
        );
        if (!object) return this.json(res, 412, { error: { code: 412, message: 'Precondition Failed' } });
        return this.json(res, 200, this.resource(session.bucket, session.name, object));
      }
      res.writeHead(308, session.received > 0 ? { range: `bytes=0-${session.received - 1}` } : {}).end();
      return;
    }

    // Objects: GET (metadata or ?alt=media), DELETE.
    if (object) {
      const bucket = decodeURIComponent(object[1] as string);
      const name = decodeURIComponent(object[2] as string);
      const stored = this.objects.get(this.key(bucket, name));
      if (req.method === 'DELETE') {
        if (!stored) return this.json(res, 404, { error: { code: 404, message: 'No such object' } });
        if (ifGen !== null && String(stored.generation) !== ifGen)
          return this.json(res, 412, { error: { code: 412, message: 'Precondition Failed' } });
        this.objects.delete(this.key(bucket, name));
        res.writeHead(204).end();
        return;
      }
      if (!stored)
        return this.json(res, 404, { error: { code: 404, message: `No such object: ${bucket}/${name}` } });
      if (url.searchParams.get('alt') === 'media') {
        res.writeHead(200, {
          'content-type': stored.contentType,
          'content-length': stored.data.length,
          'x-goog-generation': String(stored.generation),
          'x-goog-hash': `crc32c=${crc32c(stored.data)},md5=${createHash('md5').update(stored.data).digest('base64')}`,
        });
        res.end(stored.data);
        return;
      }
      return this.json(res, 200, this.resource(bucket, name, stored));
    }
    this.json(res, 404, { error: { code: 404, message: `not emulated: ${req.method} ${url.pathname}` } });
  }
}
