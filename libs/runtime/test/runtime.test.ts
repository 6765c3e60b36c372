import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bytes, connectBus, text } from '@live/bus';
import { createLogger } from '@live/log';
import { type NatsServer, startNatsServer } from '@live/testing';
import type { NatsConnection } from '@nats-io/nats-core';
import { z } from 'zod';
import {
  createMetrics,
  endpoint,
  installShutdown,
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
