// BullMQ side of loadtests/queue/bench: N no-op jobs on a queue of its own prefix on the
// given Redis. (a) addBulk in chunks of 1,000 with no worker running; (b) one Worker at the
// given concurrency until every job has completed. Prints one JSON line.
//
//   node bullmq-bench.mjs REDIS_URL PREFIX N CONCURRENCY
import { Queue, Worker } from "bullmq";

const [url, prefix, nArg, cArg] = process.argv.slice(2);
const n = Number(nArg);
const concurrency = Number(cArg);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
const name = "bench";

const queue = new Queue(name, { connection, prefix });
await queue.obliterate({ force: true }).catch(() => {});
const jobs = [];
for (let i = 0; i < n; i++) jobs.push({ name: "noop", data: { i }, opts: { removeOnComplete: true } });
let t = process.hrtime.bigint();
for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
const enqueueSecs = Number(process.hrtime.bigint() - t) / 1e9;

let done = 0;
let finish;
const finished = new Promise((r) => (finish = r));
t = process.hrtime.bigint();
const worker = new Worker(name, async () => {}, { connection, prefix, concurrency, autorun: false });
worker.on("completed", () => {
  done += 1;
  if (done === n) finish();
});
worker.run();
await finished;
const drainSecs = Number(process.hrtime.bigint() - t) / 1e9;
await worker.close();
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
console.log(JSON.stringify({
  queue: "bullmq", version: (await import("bullmq/package.json", { with: { type: "json" } })).default.version,
  n, concurrency, enqueue_secs: enqueueSecs, enqueue_per_sec: n / enqueueSecs,
  drain_secs: drainSecs, drain_per_sec: n / drainSecs,
}));
process.exit(0);
