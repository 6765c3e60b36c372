import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../src/index.js';

test('lines carry Cloud Logging severity, message and the child context', () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const logger = createLogger({ service: 'ingest', level: 'debug', destination: sink });
  logger.child({ component: 'rtmp', streamId: 'demo' }).warn({ bytes: 3 }, 'slow publisher');
  assert.equal(lines.length, 1);
  const line = lines[0];
  assert.equal(line?.severity, 'WARNING');
  assert.equal(line?.message, 'slow publisher');
  assert.equal(line?.service, 'ingest');
  assert.equal(line?.component, 'rtmp');
  assert.equal(line?.streamId, 'demo');
  assert.equal(line?.bytes, 3);
  assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT/);
});
