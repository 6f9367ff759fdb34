// Minimal typings for the untyped persistence plugins the broker loads.
declare module 'aedes-persistence-level' {
  const factory: (db: unknown) => unknown;
  export default factory;
}
declare module 'aedes-persistence-redis' {
  const factory: (opts: Record<string, unknown>) => unknown;
  export default factory;
}
