// Resends through the real Segment Node SDK, as clients do after a lost answer: every message is
// tracked twice with the same messageId, and the whole batch is sent again by the SDK's own retry
// when the endpoint answers 503 (e2e/dedup_test.go puts a proxy in front of ingest that stores the
// first batch, then answers 503). Prints one JSON line per distinct message.
//
//   TG_HOST=http://127.0.0.1:8080 TG_WRITE_KEY=wk RUN=r1 node resend.mjs
import { Analytics } from "@segment/analytics-node";

import { host, writeKey, run } from "./env.mjs";

const analytics = new Analytics({ writeKey, host, flushAt: 6, flushInterval: 200, maxRetries: 5 });
analytics.on("error", (err) => console.error("segment error:", err?.reason?.message || err?.code || err));

const all = { Analytics: true, Advertising: true, Functional: true };
for (let i = 1; i <= 3; i++) {
  const msg = {
    messageId: `resend-${run}-${i}`,
    userId: `resend-${run}-u${i}`,
    anonymousId: `resend-${run}-a${i}`,
    event: "purchase",
    properties: { order_value: 10 * i, currency: "EUR", email: `user${i}@example.com` },
    context: { consent: { categoryPreferences: all }, page: { url: `https://shop.example/checkout/${i}` }, userAgent: "sdk-e2e" },
  };
  analytics.track(msg);
  analytics.track(msg); // the same message again: what an SDK does after a lost response
  console.log(JSON.stringify({ messageId: msg.messageId, userKey: msg.userId }));
}
await analytics.closeAndFlush({ timeout: 20000 });
