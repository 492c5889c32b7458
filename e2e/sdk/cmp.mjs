// Sends track calls through the real RudderStack Node SDK with RudderStack's
// context.consentManagement (a OneTrust-style CMP's allowed and denied consent ids), then prints
// one JSON line per message. e2e/cmp_test.go runs it and checks the decisions and vendor bodies.
//
//   TG_HOST=http://127.0.0.1:8080 TG_WRITE_KEY=wk RUN=r1 node cmp.mjs
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

import { host, writeKey, run } from "./env.mjs";

// name → consentManagement. The policy maps C0002 to analytics and C0004 to marketing.
const users = {
  "cm-analytics-only": { provider: "oneTrust", allowedConsentIds: ["C0001", "C0002"], deniedConsentIds: ["C0004"], resolutionStrategy: "and" },
  "cm-all": { provider: "oneTrust", allowedConsentIds: ["C0001", "C0002", "C0004"], deniedConsentIds: [], resolutionStrategy: "and" },
  // An allowed list without a denied list denies every mapped id it does not list (C0004).
  "cm-no-denied-list": { provider: "oneTrust", allowedConsentIds: ["C0002"] },
};

const errors = [];
const client = new RudderAnalytics(writeKey, {
  dataPlaneUrl: host, flushAt: 10, flushInterval: 200, retryCount: 1,
  errorHandler: (err) => errors.push(err),
});
try {
  const sent = Object.entries(users).map(([name, cm]) => new Promise((resolve, reject) => {
    const m = {
      messageId: `${name}-${run}`, userId: `${name}-${run}`, event: "purchase",
      properties: { order_value: 12, currency: "EUR", gclid: `Cj0-${name}` },
      context: { page: { url: "https://shop.example/checkout" }, userAgent: "sdk-e2e", consentManagement: cm },
    };
    client.track(m, (err) => {
      if (err) return reject(err);
      console.log(JSON.stringify({ name, messageId: m.messageId, userKey: m.userId }));
      resolve();
    });
  }));
  await client.flush();
  await Promise.all(sent);
  if (errors.length) throw new Error(`rudder: ${errors.map((e) => e.message || e).join("; ")}`);
} catch (err) {
  console.error(`cmp.mjs: ${err.stack || err}`);
  process.exit(1);
}
