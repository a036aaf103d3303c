/**
 * Polls fn until it returns something truthy, or fails after ms naming what it
 * waited for. For convergence that has no event to wait on (a tunnel coming up,
 * a port going ACTIVE), in the demo and the tests alike.
 */
export async function until<T>(what: string, ms: number, fn: () => Promise<T | null | undefined | false>, stepMs = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
