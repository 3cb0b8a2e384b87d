/**
 * Creates a gate for repeated log lines: it opens for the first event and then at most once per
 * interval, and it passes on how many events it held back since it last opened.
 */
export function throttle(intervalMs: number, emit: (suppressed: number) => void): () => void {
  let lastEmitAt = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return () => {
    const now = Date.now();
    if (now - lastEmitAt < intervalMs) {
      suppressed += 1;
      return;
    }
    emit(suppressed);
    suppressed = 0;
    lastEmitAt = now;
  };
}
