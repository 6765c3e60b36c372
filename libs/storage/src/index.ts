// @live/storage: where media and playlists live (local folder or Google Cloud Storage).
import { z } from 'zod';
import { GcsStorage } from './gcs.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

export * from './gcs.js';
export * from './local.js';
export * from './storage.js';

/** Storage variables, shared by the services that read or write media. */
export const storageConfigSchema = {
  /** local (a folder, served by the packager's origin) or gcs. */
  STORAGE: z.enum(['local', 'gcs']).default('local'),
  /** Folder for local storage. */
  STORAGE_LOCAL_DIR: z.string().default('.data/media'),
  /** GCS bucket (required when STORAGE=gcs). */
  GCS_BUCKET: z.string().default(''),
  /** Prefix of every object in the bucket. */
  GCS_PREFIX: z.string().default(''),
};

export function createStorage(config: {
  STORAGE: 'local' | 'gcs';
  STORAGE_LOCAL_DIR: string;
  GCS_BUCKET: string;
  GCS_PREFIX: string;
}): Storage {
  if (config.STORAGE === 'gcs') {
    if (!config.GCS_BUCKET) throw new Error('GCS_BUCKET: required when STORAGE=gcs');
    return new GcsStorage({ bucket: config.GCS_BUCKET, prefix: config.GCS_PREFIX });
  }
  return new LocalStorage(config.STORAGE_LOCAL_DIR);
}
