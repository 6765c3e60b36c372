// The local runner's parts: a process restarted with a back-off when it exits, children in their own process
// group (a terminal's Ctrl-C reaches only the runner), and the random TCP balancer in front of replicas.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import {
  freePort,
  restartDelayMs,
  startChild,
  startRestarting,
  startTcpBalancer,
  waitFor,
} from '../src/index.js';

const pgid = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
};

test('restart back-off: 1 s doubling to 30 s (the default policy scaled down here)', () => {
  const policy = { initialDelayMs: 1000, maxDelayMs: 30_000, healthyAfterMs: 60_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((n) => restartDelayMs(policy, n)),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
});

test('a process that exits is started again, each crash in a row waiting twice as long; stop() ends it for good', async () => {
  const starts: number[] = [];
  const exits: number[] = [];
  const proc = startRestarting({
    name: 'crasher',
    command: process.execPath,
    args: ['-e', 'process.exit(3)'],
    policy: { initialDelayMs: 100, maxDelayMs: 400, healthyAfterMs: 60_000 },
    onExit: (_exit, _restarts, delayMs) => exits.push(delayMs),
    onRestart: () => starts.push(Date.now()),
  });
  await waitFor(() => proc.status().restarts >= 4, { timeoutMs: 10_000, what: 'four restarts' });
  await proc.stop();
  assert.deepEqual(exits.slice(0, 4), [100, 200, 400, 400]);
  assert.equal(proc.status().state, 'stopped');
  assert.equal(proc.status().lastExit?.code, 3);
  const restarts = proc.status().restarts;
  // Stopped: the exit of the last run starts nothing new (its back-off timer is cancelled).
  await proc.current().exited;
  assert.equal(proc.status().restarts, restarts);
});

test('a restarted process is a new process; nextStart() resolves with it', async () => {
  const proc = startRestarting({
    name: 'sleeper',
    command: process.execPath,
    args: ['-e', 'setInterval(() => {}, 1000)'],
    policy: { initialDelayMs: 50, maxDelayMs: 50, healthyAfterMs: 60_000 },
  });
  try {
    const first = proc.current();
    const next = proc.nextStart();
    first.signal('SIGKILL');
    const second = await next;
    assert.notEqual(second.pid, first.pid);
    assert.equal(proc.status().restarts, 1);
    assert.equal(proc.status().lastExit?.signal, 'SIGKILL');
    assert.equal(proc.status().state, 'running');
  } finally {
    await proc.stop('SIGKILL');
  }
});

test('ownProcessGroup: the child leads a group of its own, so a signal to the parent group (Ctrl-C) misses it', async () => {
  const own = startChild({
    name: 'own',
    command: process.execPath,
    args: ['-e', 'setInterval(() => {}, 1000)'],
    ownProcessGroup: true,
  });
  const shared = startChild({
    name: 'shared',
    command: process.execPath,
    args: ['-e', 'setInterval(() => {}, 1000)'],
  });
  try {
    assert.equal(pgid(own.pid), own.pid);
    assert.equal(pgid(shared.pid), pgid(process.pid));
  } finally {
    await Promise.all([own.stop('SIGKILL'), shared.stop('SIGKILL')]);
  }
});

/** A TCP backend that answers every connection with its name, and a readiness endpoint we can flip. */
async function backend(
  name: string,
): Promise<{ port: number; readyUrl: string; ready: boolean; close(): void }> {
  const state = { ready: true };
  const tcp: Server = createServer((socket) => socket.end(name));
  const http: HttpServer = createHttpServer((_req, res) => {
    res.statusCode = state.ready ? 200 : 503;
    res.end();
  });
  const [port, opsPort] = [await freePort(), await freePort()];
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => http.listen(opsPort, '127.0.0.1', resolve));
  return Object.assign(state, {
    port,
    readyUrl: `http://127.0.0.1:${opsPort}/readyz`,
    close() {
      tcp.close();
      http.close();
    },
  });
}

const ask = (port: number) =>
  new Promise<string>((resolve) => {
    let answer = '';
    connect({ port, host: '127.0.0.1' })
      .on('data', (chunk) => {
        answer += chunk.toString();
      })
      .on('close', () => resolve(answer))
      .on('error', () => resolve(''));
  });

test('the balancer sends each new connection to a random ready backend, and none to one that is not ready', async () => {
  const [a, b] = [await backend('a'), await backend('b')];
  const balancer = await startTcpBalancer({
    name: 'test',
    port: await freePort(),
    probeIntervalMs: 50,
    backends: [
      { name: 'a', host: '127.0.0.1', port: a.port, readyUrl: a.readyUrl },
      { name: 'b', host: '127.0.0.1', port: b.port, readyUrl: b.readyUrl },
    ],
  });
  try {
    const answers = await Promise.all(Array.from({ length: 40 }, () => ask(balancer.port)));
    // Random, not sticky: 40 connections from one client reach both (all on one: 2 x 0.5^40).
    assert.ok(answers.includes('a') && answers.includes('b'), answers.join(''));
    b.ready = false;
    await waitFor(() => balancer.ready().length === 1, { what: 'b out of the balancer' });
    const later = await Promise.all(Array.from({ length: 20 }, () => ask(balancer.port)));
    assert.deepEqual(new Set(later), new Set(['a']));
    a.ready = false;
    await waitFor(() => balancer.ready().length === 0, { what: 'no backend ready' });
    // No ready endpoint: the connection is refused (closed with nothing), as a Service does.
    assert.equal(await ask(balancer.port), '');
    assert.deepEqual(balancer.connections(), {
      a: 20 + answers.filter((x) => x === 'a').length,
      b: answers.filter((x) => x === 'b').length,
    });
  } finally {
    await balancer.close();
    a.close();
    b.close();
  }
});
