export * from './codec.js';
export * from './credentials.js';
export * from './defaults.js';
export * from './schemas.js';
export * from './topics.js';
export * from './types.js';
export * from './version.js';
