import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, checkEnvExample, loadConfig } from '@live/config';
import { repoRoot } from '@live/testing';
import { chatConfigSchema } from '../src/config.js';
import { TokenBucket } from '../src/limits.js';

test('.env.example lists every variable with a valid value, and nothing else', () => {
  assert.deepEqual(checkEnvExample(chatConfigSchema, join(repoRoot, 'services/chat/.env.example')), []);
});

test('the token secret is required and must be long enough; bad values are named', () => {
  assert.throws(
    () => loadConfig(chatConfigSchema, {}),
    (error: unknown) => error instanceof ConfigError && /CHAT_TOKEN_SECRET/.test(error.message),
  );
  assert.throws(
    () => loadConfig(chatConfigSchema, { CHAT_TOKEN_SECRET: 'short' }),
    (error: unknown) => error instanceof ConfigError && /at least 32 characters/.test(error.message),
  );
  assert.throws(
    () => loadConfig(chatConfigSchema, { CHAT_TOKEN_SECRET: 'x'.repeat(32), CHAT_REVIEW_FALLBACK: 'maybe' }),
    (error: unknown) => error instanceof ConfigError && /CHAT_REVIEW_FALLBACK/.test(error.message),
  );
});

test('token bucket: a burst, then one token per refill period', () => {
  const bucket = new TokenBucket(3, 1000, 0);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0]);
  assert.equal(bucket.take(0), 1000);
  assert.equal(bucket.take(400), 600);
  assert.equal(bucket.take(1000), 0);
  assert.equal(bucket.isFull(1000), false);
  assert.equal(bucket.isFull(4000), true);
});
