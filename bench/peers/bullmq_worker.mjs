// The BullMQ peer of the events benchmark (host/benches/events.rs): jobs added in bulk
// (before the clock starts), then a Worker with concurrency 100 and a trivial processor;
// prints one JSON line: jobs completed and seconds from the worker's start to the last
// completion. With `--kv`, each job also INCRs a counter (not atomic with the completion:
// BullMQ has no way to make it so).
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const [port, name, totalText] = process.argv.slice(2);
const total = Number(totalText);
const withKv = process.argv.includes("--kv");
const connection = { host: "127.0.0.1", port: Number(port) };
const queue = new Queue(name, { connection });
await queue.obliterate({ force: true });
for (let i = 0; i < total; i += 1000) {
  const jobs = [];
  for (let j = i; j < Math.min(total, i + 1000); j++) {
    jobs.push({ name: "e", data: { seq: j }, opts: { removeOnComplete: true } });
  }
  await queue.addBulk(jobs);
}
const kv = withKv ? new IORedis(connection) : null;
let done = 0;
const started = performance.now();
const finished = new Promise((resolve) => {
  const worker = new Worker(
    name,
    async (job) => {
      if (kv) await kv.incr("bullmq:count");
      return job.data.seq;
    },
    { connection, concurrency: 100 },
  );
  worker.on("completed", () => {
    done += 1;
    if (done === total) resolve(worker);
  });
});
const worker = await finished;
const seconds = (performance.now() - started) / 1000;
const { createRequire } = await import("node:module");
const version = createRequire(import.meta.url)("bullmq/package.json").version;
console.log(JSON.stringify({ events: done, seconds, bullmq: version }));
await worker.close();
await queue.close();
if (kv) await kv.quit();
process.exit(0);
