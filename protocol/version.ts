// Decision versions: a hybrid logical clock in milliseconds. A new leader that has seen the
// retained document (prev) still moves forward even if its wall clock lags the old leader's.
export function nextVersion(prev: number, nowMs: number = Date.now()): number {
  return Math.max(prev + 1, Math.floor(nowMs));
}
