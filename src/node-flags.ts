/**
 * The Node.js flags the service runs with: package.json's `start`, docker/Dockerfile's CMD
 * and the server the tests and the benchmark spawn (test/harness/server-process.ts) all
 * pass exactly these (test/docs/docker.test.ts checks the first two). `logagg serve` runs
 * in the CLI's own process, with Node's defaults unless NODE_OPTIONS carries them.
 *
 * `--max-semi-space-size=4`: V8's young generation with semi-spaces of 4 MiB instead of
 * Node 20's 16 MiB. Under a saturating publish load the young generation stays at its
 * largest, and that took about 25 MB of resident memory for garbage: RSS 245-251 MB against
 * 216-224 MB with the flag, for 3-7 % more CPU per event (docs/performance.md, "What held
 * since/until, desc and RSS back at 10M"). V8 reads it only when the process starts: it
 * cannot be set from the code.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
