// Local mode only: /hls/* and /ll/* (LL-HLS, whose playlist requests the origin holds for up to 3 s) are
// passed to the packager's origin (WEB_HLS_UPSTREAM), so the pages, the API and the video share one origin (http://localhost:8080) as design.md has it. Production pages read HLS from the
// CDN (WEB_HLS_BASE) and this proxy is off. Bodies are streamed, never buffered; the upstream's status,
// type and cache headers pass through.
import { type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';

const PASSED = ['content-type', 'content-length', 'cache-control', 'etag', 'last-modified'];

export function proxyHls(upstream: string, req: IncomingMessage, res: ServerResponse, logger: Logger): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  const target = new URL(req.url ?? '/', upstream);
  const out = request(
    target,
    { method: req.method, headers: { accept: req.headers.accept ?? '*/*' } },
    (up) => {
      const headers: Record<string, string> = {};
      for (const name of PASSED) {
        const value = up.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    },
  );
  out.setTimeout(10_000, () => out.destroy(new Error('upstream timeout')));
  out.on('error', (error) => {
    logger.warn({ err: error.message, path: target.pathname }, 'HLS upstream failed');
    if (!res.headersSent)
      res.writeHead(502, { 'content-type': 'text/plain' }).end('HLS origin unavailable\n');
    else res.destroy();
  });
  // The viewer went away mid-segment: stop fetching it.
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  out.end();
}
