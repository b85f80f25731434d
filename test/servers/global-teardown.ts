/** How long the run may go on after the last test before an open handle counts as a leak. */
const EXIT_GRACE_MS = 30_000;

export default async function globalTeardown(): Promise<void> {
  await globalThis.__changeStreamTestServers?.stop();
  // Anything left open (a Redis client still reconnecting, say) keeps Jest, and CI, waiting forever.
  // Unref'd: a clean run exits before it fires; a leak fails the run, naming what is open.
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((type) => type !== 'TTYWrap');
    console.error(
      `\n[test run] still alive ${EXIT_GRACE_MS / 1000} s after the last test, held open by: ${open.join(', ')}.\n` +
        'Something a spec (or the library) opened was never closed; find it with `npx jest --detectOpenHandles <spec>`.',
    );
    process.exit(1);
  }, EXIT_GRACE_MS).unref();
}
