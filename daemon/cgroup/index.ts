export * from './fs.js';
export * from './layout.js';
export * from './read.js';
