// The proof: one pod with 2,000 clients, a second pod starts behind a balancer that picks a random
// ready backend; within 60 s each holds 50 % +/- 15 %, and no client missed a message. Then SIGTERM one pod:
// its clients move to the other, still without missing anything.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type NatsServer, startNatsServer, waitFor } from '@live/testing';
import { type ChatProcess, startChat, token } from './fixture.js';
import { RandomReadyBalancer } from './random-balancer.js';
import { ResilientChatClient } from './resilient-client.js';

const CLIENTS = 2000;
const ROOM = 'crowd';

let nats: NatsServer;
let podA: ChatProcess;
let podB: ChatProcess | undefined;
let balancer: RandomReadyBalancer;
let clients: ResilientChatClient[] = [];
let sender: ResilientChatClient;
let sent = 0;
let sending: NodeJS.Timeout | undefined;

async function connections(pod: ChatProcess): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${pod.opsPort}/metrics`)).text();
  return Number(/^chat_connections\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? Number.NaN);
}

before(async () => {
  nats = await startNatsServer('chat-rebalance');
  podA = await startChat(nats, { LOG_LEVEL: 'info' });
  balancer = new RandomReadyBalancer();
  balancer.add('a', podA.port);
  await balancer.start();
  const viewerToken = await token('viewer', ROOM);
  clients = Array.from(
    { length: CLIENTS },
    () => new ResilientChatClient(() => balancer.url(ROOM), viewerToken),
  );
  for (let i = 0; i < CLIENTS; i += 100) await Promise.all(clients.slice(i, i + 100).map((c) => c.start()));
  // The sender is a client like the others (it may be asked to move too); a moderator, so slow mode and
  // rate limits never get in the way.
  sender = new ResilientChatClient(() => balancer.url(ROOM), await token('sender', ROOM, 'moderator'));
  await sender.start();
  sending = setInterval(() => sender.send({ type: 'send', text: `tick ${++sent}` }), 250);
});

after(async () => {
  clearInterval(sending);
  sender?.stop();
  for (const c of clients) c.stop();
  await balancer?.stop();
  await Promise.all([podA?.child.stop(), podB?.child.stop()]);
  await nats?.dispose();
});

/** Stops sending, sends one last message, waits until every client has it; then checks what each received. */
async function everyoneHasEverything(): Promise<void> {
  clearInterval(sending);
  const cid = `final-${sent}`;
  // Retried until stored: the sender may be between pods at this moment.
  const finalSeq = await waitFor(
    () => sender.acks.get(cid) ?? (sender.send({ type: 'send', text: 'final', cid }) && undefined),
    { intervalMs: 200, what: 'the final message stored' },
  );
  await waitFor(() => [sender, ...clients].every((c) => c.lastSeq >= finalSeq), {
    timeoutMs: 30_000,
    what: 'every client at the final seq',
  });
  const gaps = [sender, ...clients].reduce((n, c) => n + c.gaps, 0);
  const duplicates = [sender, ...clients].reduce((n, c) => n + c.duplicates, 0);
  assert.equal(gaps, 0, 'no client missed a message');
  assert.equal(duplicates, 0, 'no client got a message twice');
}

test(`a second pod takes half of ${CLIENTS} clients within 60 s; nobody misses a message`, {
  timeout: 120_000,
}, async () => {
  assert.equal(await connections(podA), CLIENTS + 1);
  const started = Date.now();
  podB = await startChat(nats, { LOG_LEVEL: 'info' });
  balancer.add('b', podB.port);
  const b = podB;
  const split = await waitFor(
    async () => {
      const [onA, onB] = [await connections(podA), await connections(b)];
      const total = onA + onB;
      const shareA = onA / total;
      return total >= CLIENTS && shareA >= 0.35 && shareA <= 0.65 && clients.every((c) => c.joined)
        ? { onA, onB }
        : null;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: 'both pods within 50 % +/- 15 %' },
  );
  const seconds = (Date.now() - started) / 1000;
  const moved = clients.filter((c) => c.reconnects > 0).length;
  console.log(
    `balanced in ${seconds.toFixed(1)} s: pod A ${split.onA}, pod B ${split.onB}; ${moved} clients moved`,
  );
  assert.ok(
    balancer.backends[0]?.notReadyReasons.some((r) => /above fair share/.test(r)),
    'pod A said not ready',
  );
  assert.deepEqual(
    clients.flatMap((c) => c.unexpectedCloses),
    [],
    'every close was a reconnect request',
  );
  await everyoneHasEverything();
});

test('SIGTERM: the pod tells its clients to reconnect (spread out), they resume on the other pod, nothing lost', {
  timeout: 60_000,
}, async () => {
  const b = podB as ChatProcess;
  sending = setInterval(() => sender.send({ type: 'send', text: `tock ${++sent}` }), 250);
  const onA = await connections(podA);
  assert.ok(onA > 0);
  podA.child.signal('SIGTERM');
  const exit = await podA.child.exited;
  assert.equal(exit.code, 0, 'clean exit');
  await waitFor(
    async () => (await connections(b)) === CLIENTS + 1 && [sender, ...clients].every((c) => c.joined),
    {
      timeoutMs: 20_000,
      what: 'every client on pod B',
    },
  );
  await everyoneHasEverything();
});
