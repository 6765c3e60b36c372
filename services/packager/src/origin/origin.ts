// The local HTTP origin (embedded default): HLS from storage under /hls/<streamId>/..., with the MIME
// types, CORS and cache lifetimes a CDN or player expects, and a bare hls.js page under /watch/<streamId>
// (the real viewer page is its own piece of work).
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { STREAM_ID_PATTERN } from '@live/contracts';
import { type HttpListener, listenHttp } from '@live/runtime';
import { cacheControlFor, checkKey, contentTypeFor, type Storage } from '@live/storage';
import type { Logger } from 'pino';

const require = createRequire(import.meta.url);
const HLS_JS = require.resolve('hls.js/dist/hls.min.js');

const watchPage = (streamId: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${streamId} - live</title>
<style>body{margin:0;background:#111;color:#eee;font:14px system-ui}video{width:100%;max-height:90vh;background:#000}p{padding:0 1em}</style>
</head><body>
<video id="video" controls autoplay muted playsinline></video>
<p id="status">loading ${streamId}...</p>
<script src="/assets/hls.min.js"></script>
<script>
  const video = document.getElementById('video');
  const status = document.getElementById('status');
  const src = '/hls/${streamId}/master.m3u8';
  const hls = new Hls({ liveSyncDurationCount: 3 });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => { status.textContent = 'live: ' + data.levels.map((l) => l.height + 'p').join(', '); video.play().catch(() => {}); });
  hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) { status.textContent = 'offline or starting soon, retrying...'; setTimeout(() => hls.loadSource(src), 2000); } });
  hls.loadSource(src);
  hls.attachMedia(video);
  window.hls = hls;
</script></body></html>`;

export interface OriginOptions {
  port: number;
  bind: string;
  storage: Storage;
  logger: Logger;
}

export async function startOrigin(o: OriginOptions): Promise<HttpListener> {
  const hlsJs = await readFile(HLS_JS);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    res.setHeader('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') {
      res
        .writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
          'Access-Control-Max-Age': '86400',
        })
        .end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const watch = /^\/watch\/([^/]+)$/.exec(url.pathname);
    if (watch) {
      const streamId = watch[1] ?? '';
      if (!STREAM_ID_PATTERN.test(streamId)) {
        res.writeHead(404).end('no such stream\n');
        return;
      }
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' })
        .end(watchPage(streamId));
      return;
    }
    if (url.pathname === '/assets/hls.min.js') {
      res
        .writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'public, max-age=3600' })
        .end(hlsJs);
      return;
    }
    if (!url.pathname.startsWith('/hls/')) {
      res.writeHead(404).end();
      return;
    }
    let key: string;
    try {
      key = checkKey(decodeURIComponent(url.pathname.slice('/hls/'.length)));
    } catch {
      res.writeHead(400).end('bad path\n');
      return;
    }
    o.storage
      .get(key)
      .then((data) => {
        if (!data) {
          // Short negative caching: a playlist may appear a moment later.
          res.writeHead(404, { 'cache-control': 'no-cache' }).end();
          return;
        }
        res.writeHead(200, {
          'content-type': contentTypeFor(key),
          'cache-control': cacheControlFor(key),
          'content-length': data.length,
        });
        res.end(req.method === 'HEAD' ? undefined : data);
      })
      .catch((error: Error) => {
        o.logger.error({ key, err: error.message }, 'origin read failed');
        res.writeHead(502).end();
      });
  });
  const listener = await listenHttp(server, o.port, o.bind);
  o.logger.info({ port: listener.port }, 'HTTP origin listening (/hls/<id>/master.m3u8, /watch/<id>)');
  return listener;
}
