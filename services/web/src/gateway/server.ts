// The web service's HTTP face: the pages, the gateway API (JSON + server-sent events) and, locally, the
// HLS proxy. Routing is a short table; every handler validates its input and answers 4xx with a message.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { STREAM_ID_PATTERN, streamMoveRequest, workerDrainRequest } from '@live/contracts';
import { type HttpListener, listenHttp, type RequestTarget, requestTarget } from '@live/runtime';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { WebConfig } from '../config.js';
import { chatTokenRequest, keyRequest, loginRequest, type PageConfig } from '../shared/api.js';
import { AdminAuth } from './auth.js';
import type { Ctl } from './ctl.js';
import { proxyHls } from './hls-proxy.js';
import { HttpError, NO_STORE, readJson, sendError, sendJson } from './http.js';
import type { LiveState } from './live-state.js';
import type { PageFile, Pages } from './pages.js';
import type { SseHub } from './sse.js';

export interface WebServerOptions {
  config: WebConfig;
  logger: Logger;
  pages: Pages;
  state: LiveState;
  ctl: Ctl;
  sse: SseHub;
  auth: AdminAuth;
  requests: Counter<'route' | 'status'>;
}

const WATCH = /^\/watch\/([^/]+)\/?$/;

/** Origins (scheme://host:port) of absolute URLs, for the Content-Security-Policy. */
function originOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.host ? `${u.protocol}//${u.host}` : null;
  } catch {
    return null;
  }
}

export function contentSecurityPolicy(config: WebConfig): string {
  const video = [originOf(config.WEB_HLS_BASE), originOf(config.WEB_LLHLS_BASE)].filter(Boolean);
  const connect = ["'self'", originOf(config.WEB_CHAT_URL), ...video].filter(Boolean);
  // Scripts only from this origin (no inline script, no eval): a message that slipped into the DOM as HTML
  // still could not run. hls.js runs its transmuxer in a blob: worker and plays through MediaSource (blob:).
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src ${connect.join(' ')}`,
    `media-src 'self' blob: ${video.join(' ')}`.trim(),
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export async function startWebServer(o: WebServerOptions): Promise<HttpListener> {
  const { config, logger, pages, state, ctl, sse, auth } = o;
  const csp = contentSecurityPolicy(config);

  const sendPage = (res: ServerResponse, file: PageFile) =>
    res
      .writeHead(200, {
        'content-type': file.type,
        'content-length': file.body.length,
        'cache-control': 'no-cache',
        'content-security-policy': csp,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'same-origin',
      })
      .end(file.body);

  const requireAdmin = (req: IncomingMessage) => {
    if (!auth.isAdmin(req))
      throw new HttpError(
        401,
        'sign in: this needs the admin token (WEB_ADMIN_TOKEN) as a bearer token or cookie',
      );
  };

  const streamParam = (url: RequestTarget): string => {
    const id = url.searchParams.get('stream');
    if (!id || !STREAM_ID_PATTERN.test(id))
      throw new HttpError(400, 'expected ?stream=<stream id> (lowercase letters, digits, - and _)');
    return id;
  };

  const pageConfig = (req: IncomingMessage): PageConfig => ({
    hlsBase: config.WEB_HLS_BASE.replace(/\/$/, ''),
    llHlsBase: config.WEB_LLHLS_BASE ? config.WEB_LLHLS_BASE.replace(/\/$/, '') : null,
    chatUrl: config.WEB_CHAT_URL.replace(/\/$/, ''),
    rtmpUrl: config.WEB_RTMP_URL,
    auth: config.WEB_AUTH,
    admin: auth.isAdmin(req),
    guestChat: config.WEB_GUEST_CHAT,
    limits: { maxSourceKbps: config.WEB_MAX_SOURCE_KBPS, maxKeyframeMs: config.WEB_MAX_KEYFRAME_MS },
  });

  type Handler = (req: IncomingMessage, res: ServerResponse, url: RequestTarget) => Promise<void> | void;
  const get: Record<string, Handler> = {
    '/api/config': (req, res) => sendJson(res, 200, pageConfig(req)),
    // Public: a viewer's page learns whether the stream is live, starting, or ended.
    '/api/events': (req, res, url) => {
      const streamId = streamParam(url);
      const stream = sse.accept(req, res);
      if (!stream) return;
      stream.send('state', state.streamState(streamId));
      stream.onClose(state.stateListeners.add(streamId, (s) => stream.send('state', s)));
    },
    // The streamer's page: full lifecycle events (reasons, rejections) and source health, ~5/s.
    '/api/studio/events': (req, res, url) => {
      requireAdmin(req);
      const streamId = streamParam(url);
      const stream = sse.accept(req, res);
      if (!stream) return;
      stream.send('state', state.streamState(streamId));
      const latest = state.latestHealth(streamId);
      if (latest) stream.send('health', latest);
      stream.onClose(state.stateListeners.add(streamId, (s) => stream.send('state', s)));
      stream.onClose(state.lifecycleListeners.add(streamId, (e) => stream.send('lifecycle', e)));
      stream.onClose(state.healthListeners.add(streamId, (h) => stream.send('health', h)));
    },
    '/api/fleet': (req, res) => {
      requireAdmin(req);
      const stream = sse.accept(req, res);
      if (!stream) return;
      stream.send('fleet', state.fleet());
      stream.onClose(state.fleetListeners.add('', (f) => stream.send('fleet', f)));
    },
  };
  const post: Record<string, Handler> = {
    '/api/login': async (req, res) => {
      const { token } = await readJson(req, loginRequest);
      if (config.WEB_AUTH === 'none') return sendJson(res, 200, { admin: true });
      if (!auth.matches(token)) throw new HttpError(401, 'wrong admin token');
      sendJson(res, 200, { admin: true }, { 'set-cookie': auth.cookie(token, req) });
    },
    '/api/logout': (_req, res) =>
      sendJson(res, 200, { admin: false }, { 'set-cookie': AdminAuth.clearCookie() }),
    '/api/studio/keys': async (req, res) => {
      requireAdmin(req);
      const body = await readJson(req, keyRequest);
      sendJson(res, 201, await ctl.createKey(body.streamId, body.label));
    },
    '/api/studio/keys/rotate': async (req, res) => {
      requireAdmin(req);
      const body = await readJson(req, keyRequest);
      sendJson(res, 201, await ctl.rotateKey(body.streamId, body.label));
    },
    '/api/ops/move': async (req, res) => {
      requireAdmin(req);
      // The bodies are the operator endpoints' own requests (the runbook's live.ctl.stream.move / .drain).
      const body = await readJson(req, streamMoveRequest);
      sendJson(res, 200, await ctl.move(body.streamId, body.toWorker));
    },
    '/api/ops/drain': async (req, res) => {
      requireAdmin(req);
      const body = await readJson(req, workerDrainRequest);
      sendJson(res, 200, await ctl.drain(body.workerId));
    },
    '/api/chat/token': async (req, res) => {
      const body = await readJson(req, chatTokenRequest);
      // Moderator and streamer tokens are for the studio's people; guests only where enabled (local mode).
      if (body.role !== 'viewer') requireAdmin(req);
      else if (!config.WEB_GUEST_CHAT && !auth.isAdmin(req))
        throw new HttpError(403, 'guest chat is off here: sign in on the site to chat');
      sendJson(res, 200, await ctl.chatToken(body.room, body.role, body.name));
    },
  };

  const route = async (req: IncomingMessage, res: ServerResponse, url: RequestTarget): Promise<string> => {
    const path = url.pathname;
    if (path.startsWith('/api/')) {
      const table = req.method === 'POST' ? post : req.method === 'GET' ? get : undefined;
      const handler = table?.[path];
      if (!handler) {
        const known = path in get || path in post;
        throw new HttpError(known ? 405 : 404, known ? `${req.method} not allowed here` : 'no such API');
      }
      await handler(req, res, url);
      return path;
    }
    if (path.startsWith('/hls/') || path.startsWith('/ll/')) {
      if (!config.WEB_HLS_UPSTREAM) throw new HttpError(404, `HLS is served from ${config.WEB_HLS_BASE}`);
      proxyHls(config.WEB_HLS_UPSTREAM, url, req, res, logger);
      return 'hls';
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'pages are read-only');
    if (path.startsWith('/assets/')) {
      const file = pages.asset(path.slice('/assets/'.length));
      if (!file) throw new HttpError(404, 'no such asset');
      res
        .writeHead(200, {
          'content-type': file.type,
          'content-length': file.body.length,
          // Vite puts a content hash in every asset name: a new build is a new name.
          'cache-control': 'public, max-age=31536000, immutable',
          'x-content-type-options': 'nosniff',
        })
        .end(req.method === 'HEAD' ? undefined : file.body);
      return 'asset';
    }
    const watch = WATCH.exec(path);
    if (watch) {
      if (!STREAM_ID_PATTERN.test(watch[1] ?? '')) throw new HttpError(404, 'no such stream');
      sendPage(res, pages.html('watch'));
      return 'watch';
    }
    if (path === '/studio' || path === '/studio/') {
      sendPage(res, pages.html('studio'));
      return 'studio';
    }
    if (path === '/ops' || path === '/ops/') {
      sendPage(res, pages.html('ops'));
      return 'ops';
    }
    if (path === '/') {
      res.writeHead(302, { location: '/studio', ...NO_STORE }).end();
      return 'root';
    }
    throw new HttpError(404, 'not found: pages are /watch/<stream>, /studio and /ops');
  };

  const server = createServer((req, res) => {
    // A bad target is a 400 with its reason; an absolute-form one counts for its path only (never proxied
    // to the host it names).
    const url = requestTarget(req, res, logger);
    if (!url) {
      o.requests.inc({ route: 'error', status: '400' });
      return;
    }
    route(req, res, url)
      .then((name) => o.requests.inc({ route: name, status: String(res.statusCode) }))
      .catch((error: unknown) => {
        if (error instanceof HttpError) {
          sendError(res, error.status, error.message);
          o.requests.inc({ route: 'error', status: String(error.status) });
          return;
        }
        logger.error({ err: (error as Error).message, path: url.pathname }, 'request failed');
        sendError(res, 500, 'internal error');
        o.requests.inc({ route: 'error', status: '500' });
      });
  });
  // Server-sent event streams are long-lived: no request timeout for them (the keepalive keeps them warm).
  server.requestTimeout = 0;
  server.headersTimeout = 10_000;
  return listenHttp(server, config.WEB_PORT, config.WEB_BIND, logger);
}
