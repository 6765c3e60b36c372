// The HTTP origin: HLS from storage under /hls/<streamId>/... (the local default; on GKE plain HLS is served
// from GCS + Cloud CDN) and LL-HLS under /ll/<streamId>/... (ll-origin.ts), with the MIME types, CORS and
// cache lifetimes a CDN or player expects. The pages are the web service's (services/web),
// which proxies /hls/ here locally.
import { createServer, type Server } from 'node:http';
import { type HttpListener, listenHttp, requestTarget } from '@live/runtime';
import { cacheControlFor, checkKey, contentTypeFor, type Storage } from '@live/storage';
import type { Logger } from 'pino';
import type { LlOrigin } from '../llhls/ll-origin.js';

export interface OriginOptions {
  port: number;
  bind: string;
  storage: Storage;
  /** Serves /ll/ (absent: LL-HLS is off and /ll/ answers 404). */
  llOrigin?: LlOrigin;
  logger: Logger;
}

export async function startOrigin(o: OriginOptions): Promise<HttpListener> {
  const server: Server = createServer((req, res) => {
    // A bad target (`GET http://a:b/`) is a 400, never an exception out of this handler (it ended the
    // packager); an absolute-form target counts for its path only.
    const url = requestTarget(req, res, o.logger);
    if (!url) return;
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
    if (url.pathname.startsWith('/ll/')) {
      if (!o.llOrigin?.handle(req, res, url)) res.writeHead(404).end();
      return;
    }
    if (!url.pathname.startsWith('/hls/')) {
      res.writeHead(404).end();
      return;
    }
    let key: string;
    try {
      key = checkKey(url.path.slice('/hls/'.length));
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
  const listener = await listenHttp(server, o.port, o.bind, o.logger);
  o.logger.info({ port: listener.port }, 'HTTP origin listening (/hls/<id>/master.m3u8)');
  return listener;
}
