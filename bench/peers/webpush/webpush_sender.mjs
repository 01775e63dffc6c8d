// The Web Push benchmark's peer (host/benches/webpush.rs): Node's web-push sending the
// same payloads to the same push service stand-in as ours.
//
// web-push's sendNotification speaks https only (it calls https.request), and the
// stand-in is plain HTTP on loopback, so each message is made by web-push's own
// generateRequestDetails (aes128gcm encryption and the VAPID JWT, exactly what
// sendNotification sends) and posted with Node's http module over a keep-alive agent.
//
// Usage: node webpush_sender.mjs <job.json>
//   job.json: {"subscriptions": [PushSubscription...], "payloads": [string...],
//              "n": N, "concurrency": C, "vapid": {"subject", "publicKey", "privateKey"}}
// Prints one JSON line: {"seconds": s, "sent": n, "failed": f, "web_push": version}.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const webpush = require('web-push');
const version = require('web-push/package.json').version;

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const agent = new http.Agent({ keepAlive: true, maxSockets: job.concurrency });

function post(details) {
  return new Promise((resolve) => {
    const u = new URL(details.endpoint);
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: u.pathname, method: details.method,
        headers: details.headers, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
    req.on('error', () => resolve(0));
    req.end(details.body);
  });
}

let next = 0;
let sent = 0;
let failed = 0;
async function lane() {
  for (;;) {
    const i = next++;
    if (i >= job.n) return;
    const sub = job.subscriptions[i % job.subscriptions.length];
    const details = webpush.generateRequestDetails(sub, job.payloads[i % job.payloads.length], {
      vapidDetails: job.vapid,
      TTL: 86400,
      urgency: 'normal',
      contentEncoding: 'aes128gcm',
    });
    const status = await post(details);
    if (status === 201) sent++; else failed++;
  }
}

const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: job.concurrency }, lane));
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
agent.destroy();
console.log(JSON.stringify({ seconds, sent, failed, web_push: version }));
