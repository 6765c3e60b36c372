import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, checkEnvExample, loadConfig } from '@live/config';
import { repoRoot } from '@live/testing';
import { supervisorConfigSchema } from '../src/config.js';

test('.env.example lists every variable with a valid value, and nothing else', () => {
  assert.deepEqual(
    checkEnvExample(supervisorConfigSchema, join(repoRoot, 'services/supervisor/.env.example')),
    [],
  );
});

test('a bad variable is named in the error', () => {
  assert.throws(
    () => loadConfig(supervisorConfigSchema, { NATS_URL: 'localhost' }),
    (error: unknown) => error instanceof ConfigError && /NATS_URL/.test(error.message),
  );
});
