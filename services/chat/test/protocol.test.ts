import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatClient, type NatsServer, sendMalformedRequests, startNatsServer, waitFor } from '@live/testing';
import { type ChatProcess, startChat, token } from './fixture.js';

let nats: NatsServer;
let a: ChatProcess;
let b: ChatProcess;

before(async () => {
  nats = await startNatsServer('chat-protocol');
  [a, b] = await Promise.all([
    startChat(nats, { CHAT_HISTORY: '5', CHAT_USER_BURST: '50' }),
    startChat(nats, { CHAT_HISTORY: '5', CHAT_USER_BURST: '50' }),
  ]);
});

after(async () => {
  await Promise.all([a?.child.stop(), b?.child.stop()]);
  await nats?.dispose();
});

test('two pods, clients on both: every message in the same order, seq 1, 2, 3 with no gap', async () => {
  const room = 'order';
  const clients = await Promise.all(
    ['u1', 'u2', 'u3', 'u4'].map(
      async (user, i) => (await ChatClient.join((i % 2 ? b : a).url(room), await token(user, room))).client,
    ),
  );
  // Everyone sends at once, on both pods: the writers race on the room's compare-and-set (a pod writing a
  // burst keeps winning; the other must keep retrying, never drop a message).
  const perClient = 15;
  for (let n = 0; n < perClient; n++)
    for (const [i, c] of clients.entries()) c.send({ type: 'send', text: `m${i}-${n}`, cid: `${i}-${n}` });
  const total = clients.length * perClient;
  await waitFor(() => clients.every((c) => c.events().length === total), {
    what: 'every message on every client',
  });
  const reference = clients[0]?.events().map((e) => `${e.seq}:${e.text}`);
  for (const c of clients)
    assert.deepEqual(
      c.events().map((e) => `${e.seq}:${e.text}`),
      reference,
    );
  assert.deepEqual(
    clients[0]?.events().map((e) => e.seq),
    Array.from({ length: total }, (_, i) => i + 1),
  );
  // Each client's own messages are in the order it sent them.
  for (let i = 0; i < clients.length; i++) {
    const mine: string[] | undefined = clients[0]
      ?.events()
      .filter((e) => e.user.id === `u${i + 1}`)
      .map((e) => e.text);
    assert.deepEqual(
      mine,
      Array.from({ length: perClient }, (_, n) => `m${i}-${n}`),
    );
  }
  // Acks carry the stored seq.
  const acks = clients[0]?.frames.filter((f) => f.type === 'ack') ?? [];
  assert.equal(acks.length, perClient);
  for (const c of clients) c.close();
});

test('a joining client gets the last N messages; a reconnecting one gets exactly what it missed', async () => {
  const room = 'resume';
  const { client: writer } = await ChatClient.join(a.url(room), await token('writer', room));
  const { client: reader } = await ChatClient.join(b.url(room), await token('reader', room));
  for (let n = 1; n <= 8; n++) writer.send({ type: 'send', text: `before ${n}` });
  await reader.waitFor((f) => f.type === 'msg' && f.text === 'before 8', 'the 8th message');
  const lastSeen = reader.events().at(-1)?.seq as number;
  reader.close();
  await reader.closed;
  for (let n = 1; n <= 4; n++) writer.send({ type: 'send', text: `missed ${n}` });
  await writer.waitFor(
    (f) => f.type === 'msg' && f.text === 'missed 4',
    'the writer sees its 4th missed message',
  );

  // History: the newest CHAT_HISTORY (5) messages, oldest first.
  const { client: newcomer, welcome } = await ChatClient.join(a.url(room), await token('newcomer', room));
  assert.equal(welcome.seq, 12);
  const history = await newcomer.waitFor((f) => f.type === 'history', 'history');
  assert.deepEqual(
    history.events.map((e: { text: string }) => e.text),
    ['before 8', 'missed 1', 'missed 2', 'missed 3', 'missed 4'],
  );

  // Resume on the other pod from the last seq seen: exactly the 4 missed, then live ones, no duplicate.
  const { client: back } = await ChatClient.join(a.url(room), await token('reader', room), lastSeen);
  writer.send({ type: 'send', text: 'after' });
  await back.waitFor((f) => f.type === 'msg' && f.text === 'after', 'the live message after resuming');
  assert.deepEqual(
    back.events().map((e) => e.text),
    ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'after'],
  );
  assert.deepEqual(
    back.events().map((e) => e.seq),
    [9, 10, 11, 12, 13],
  );

  // Older history on request.
  back.send({ type: 'history', before: 9, limit: 3 });
  const older = await back.waitFor((f) => f.type === 'history', 'older history');
  assert.deepEqual(
    older.events.map((e: { text: string }) => e.text),
    ['before 6', 'before 7', 'before 8'],
  );
  assert.equal(older.complete, false);
  for (const c of [writer, newcomer, back]) c.close();
});

test('HTML and script are stored and delivered as text, byte for byte', async () => {
  const room = 'html';
  const { client: sender } = await ChatClient.join(a.url(room), await token('s', room));
  const { client: receiver } = await ChatClient.join(b.url(room), await token('r', room));
  const text = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes" \u202e ✓';
  sender.send({ type: 'send', text });
  const got = await receiver.waitFor((f) => f.type === 'msg', 'the message');
  assert.equal(got.text, text);
  sender.close();
  receiver.close();
});

test('events close together arrive as one frame (a JSON array), in order, each exactly once', async () => {
  const room = 'batch';
  const { client: sender } = await ChatClient.join(a.url(room), await token('s', room));
  const { client: receiver } = await ChatClient.join(b.url(room), await token('r', room));
  const before = receiver.rawFrames;
  for (let n = 1; n <= 10; n++) sender.send({ type: 'send', text: `burst ${n}` });
  await receiver.waitFor((f) => f.type === 'msg' && f.text === 'burst 10', 'the burst');
  assert.deepEqual(
    receiver.events().map((e) => e.text),
    Array.from({ length: 10 }, (_, i) => `burst ${i + 1}`),
  );
  assert.ok(receiver.rawFrames - before < 10, `${receiver.rawFrames - before} frames for 10 events`);
  sender.close();
  receiver.close();
});

test('hostile requests and upgrades to the chat and ops ports: refused one by one, the pod goes on serving', async () => {
  const [toChat] = await Promise.all([sendMalformedRequests(a.port), sendMalformedRequests(a.opsPort)]);
  // An upgrade refused while its client resets the connection ended the process (ECONNRESET, no listener).
  const alive = await fetch(`http://127.0.0.1:${a.port}/healthz`).catch(() => null);
  assert.equal(alive?.status, 200, `the pod lives on:\n${a.child.tail().slice(-12).join('\n')}`);
  assert.equal((await fetch(`http://127.0.0.1:${a.opsPort}/healthz`)).status, 200);
  const { client } = await ChatClient.join(a.url('after-hostile'), await token('u', 'after-hostile'));
  client.close();
  const status = (name: string) => toChat.find((r) => r.name === name)?.status;
  assert.equal(status('WebSocket upgrade to a bogus path with a bad key'), 400);
  assert.equal(status('WebSocket upgrade to a room path with a bad key'), 400);
  assert.equal(status('bad percent-encoding'), 400);
  const warned = a.lines.filter((l) => l.includes('malformed HTTP request refused'));
  assert.ok(warned.length > 0 && warned.every((l) => l.includes('"WARNING"')), 'logged at warn');
});
