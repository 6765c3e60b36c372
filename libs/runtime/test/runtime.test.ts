import assert from 'node:assert/strict';
import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { bytes, connectBus, text } from '@live/bus';
import { createLogger } from '@live/log';
import { type NatsServer, sendMalformedRequests, startNatsServer, waitFor } from '@live/testing';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import {
  createMetrics,
  endpoint,
  installShutdown,
  parseRequestTarget,
  proxyHttp,
  RequestError,
  registerService,
  startOpsServer,
} from '../src/index.js';

const logger = createLogger({ service: 'runtime-test', level: 'fatal' });
let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url], name: 'runtime-test', logger });
});
after(async () => {
  await nc?.close();
  await server?.dispose();
});

test('ops server: liveness, readiness with its reason, Prometheus metrics', async () => {
  let reason: string | null = 'stream keys not loaded';
  const metrics = createMetrics('demo');
  const ops = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    logger,
    metrics,
    notReadyReason: () => reason,
  });
  const base = `http://127.0.0.1:${ops.port}`;
  try {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    assert.match(await notReady.text(), /stream keys not loaded/);
    reason = null;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const body = await (await fetch(`${base}/metrics`)).text();
    assert.match(body, /process_cpu_user_seconds_total\{service="demo"\}/);
  } finally {
    await ops.close();
  }
});

test('request targets: paths and http(s) URLs parse (an absolute URL for its path only), the rest is a reason', () => {
  const ok = (raw: string) => {
    const t = parseRequestTarget(raw);
    assert.ok(!('error' in t), `${raw}: ${'error' in t ? t.error : ''}`);
    return t;
  };
  assert.deepEqual(
    { ...ok('/hls/a%20b/x.m3u8?_HLS_msn=3'), searchParams: undefined },
    {
      pathname: '/hls/a%20b/x.m3u8',
      path: '/hls/a b/x.m3u8',
      search: '?_HLS_msn=3',
      searchParams: undefined,
    },
  );
  assert.equal(ok('/ll/x.m3u8?_HLS_msn=3').searchParams.get('_HLS_msn'), '3');
  // Absolute-form: the host is dropped; `//host/...` is a path, not a host.
  assert.equal(ok('http://elsewhere:8080/hls/x?y=1').pathname, '/hls/x');
  assert.equal(ok('//elsewhere/hls/x').pathname, '//elsewhere/hls/x');
  assert.equal(ok('/hls/%2e%2e/%2e%2e/etc/passwd').pathname, '/etc/passwd');
  assert.equal(ok('/hls/x/..%2f..%2fetc').path, '/hls/x/../../etc', 'decoded, for checkKey to refuse');
  for (const [raw, reason] of [
    ['/%', /percent-encoding/],
    ['/%E0%A4%A', /percent-encoding/],
    ['http://a:b/', /not a valid URL/],
    ['http://[::1/', /not a valid URL/],
    ['ftp://x/', /not http/],
    ['*', /neither a path nor/],
    ['', /empty/],
  ] as const) {
    const t = parseRequestTarget(raw);
    assert.ok('error' in t && reason.test(t.error), `${raw}: ${JSON.stringify(t)}`);
  }
});

test("ops server: hostile requests get a 400 with the reason (or Node's own 4xx), each logged once at warn; it serves on", async () => {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const ops = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    logger: createLogger({ service: 'ops-test', level: 'warn', destination }),
    metrics: createMetrics('demo'),
    notReadyReason: () => null,
    routes: { '/drain': async () => 'drained' },
  });
  const base = `http://127.0.0.1:${ops.port}`;
  try {
    const answers = await sendMalformedRequests(ops.port);
    const answer = (name: string) => answers.find((a) => a.name === name);
    assert.equal(answer('bad percent-encoding')?.status, 400);
    assert.equal(answer('absolute-form with an invalid port')?.status, 400);
    assert.equal(answer('asterisk-form')?.status, 400);
    assert.equal(answer('bad method')?.status, 400);
    assert.equal(answer('header without a colon')?.status, 400);
    assert.equal(answer('binary request line')?.status, 400);
    assert.equal(answer('64 KiB URL')?.status, 431);
    assert.ok(
      answers.every((a) => a.end !== 'timeout'),
      'every request answered or closed at once',
    );
    // One warn line per refused request: those answered 400 or 431, and the one cut short mid-headers.
    const refused = answers.filter((a) => a.status !== null && a.status >= 400 && a.status !== 404);
    const warned = () => lines.filter((l) => l.message === 'malformed HTTP request refused');
    await waitFor(() => warned().length >= refused.length + 1, { what: 'the warn lines' });
    assert.equal(warned().length, refused.length + 1, JSON.stringify(warned()));
    assert.ok(warned().every((l) => l.severity === 'WARNING' && typeof l.reason === 'string'));
    // The routes are this server's own keys only (not Object.prototype's).
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/drain`)).status, 200);
    assert.equal((await fetch(`${base}/constructor`)).status, 404);
  } finally {
    await ops.close();
  }
});

test('proxyHttp: an upstream that dies mid-body cuts the response to the client (it used to stay open for ever)', {
  timeout: 5000,
}, async () => {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    res.write(Buffer.alloc(1000), () => res.socket?.destroy());
  });
  const proxy = createServer((req, res) => {
    const { port } = upstream.address() as AddressInfo;
    proxyHttp(new URL(`http://127.0.0.1:${port}/segment`), req, res, {
      passHeaders: ['content-length'],
      timeoutMs: 5000,
      onError: () => res.writeHead(502).end(),
    });
  });
  await Promise.all([upstream, proxy].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  try {
    const { port } = proxy.address() as AddressInfo;
    const cut = await new Promise<{ status?: number; complete: boolean }>((resolve, reject) => {
      get(`http://127.0.0.1:${port}/`, (res) => {
        res.on('error', () => undefined);
        res.resume();
        res.on('close', () => resolve({ status: res.statusCode, complete: res.complete }));
      }).on('error', reject);
    });
    assert.deepEqual(cut, { status: 200, complete: false });
  } finally {
    upstream.close();
    proxy.close();
  }
});

test('a registered service answers $SRV.PING/INFO and validates its endpoint requests', async () => {
  const service = await registerService(nc, logger, {
    name: 'live-echo',
    version: '0.1.0',
    description: 'test service',
    endpoints: [
      endpoint({
        name: 'double',
        subject: 'live.ctl.test.double',
        description: 'doubles n',
        request: z.object({ n: z.number() }),
        reply: z.object({ n: z.number() }),
        handler: async ({ n }) => {
          if (n < 0) throw new RequestError('n must not be negative');
          return { n: n * 2 };
        },
      }),
    ],
  });
  try {
    const ping = JSON.parse(
      text((await nc.request('$SRV.PING.live-echo', undefined, { timeout: 2000 })).data),
    );
    assert.equal(ping.name, 'live-echo');
    assert.equal(ping.type, 'io.nats.micro.v1.ping_response');
    const info = JSON.parse(
      text((await nc.request('$SRV.INFO.live-echo', undefined, { timeout: 2000 })).data),
    );
    assert.equal(info.endpoints[0].subject, 'live.ctl.test.double');

    const ok = await nc.request('live.ctl.test.double', bytes('{"n":21}'), { timeout: 2000 });
    const stats = JSON.parse(
      text((await nc.request('$SRV.STATS.live-echo', undefined, { timeout: 2000 })).data),
    );
    assert.equal(stats.type, 'io.nats.micro.v1.stats_response');
    assert.equal(stats.endpoints[0].num_requests, 1, 'STATS counts what the endpoint served');
    assert.deepEqual(JSON.parse(text(ok.data)), { n: 42 });

    const bad = await nc.request('live.ctl.test.double', bytes('{"n":"x"}'), { timeout: 2000 });
    assert.equal(bad.headers?.get('Nats-Service-Error-Code'), '400');
    assert.match(JSON.parse(text(bad.data)).error, /n: .*number/i);

    const refused = await nc.request('live.ctl.test.double', bytes('{"n":-1}'), { timeout: 2000 });
    assert.equal(refused.headers?.get('Nats-Service-Error-Code'), '400');
    assert.equal(JSON.parse(text(refused.data)).error, 'n must not be negative');
  } finally {
    await service.stop();
  }
});

test('shutdown runs every step in order, bounds a stuck one, and exits non-zero if one failed', async () => {
  const ran: string[] = [];
  let exitCode = -1;
  const { shutdown } = installShutdown(
    logger,
    [
      { name: 'a', run: () => void ran.push('a') },
      { name: 'stuck', run: () => new Promise(() => ran.push('stuck')), timeoutMs: 50 },
      { name: 'b', run: async () => void ran.push('b') },
    ],
    (code) => {
      exitCode = code;
    },
  );
  await shutdown('SIGTERM');
  assert.deepEqual(ran, ['a', 'stuck', 'b']);
  assert.equal(exitCode, 1);
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
});
