// Sends a fixed set of calls through the real Segment and RudderStack Node SDKs to tollgate's
// Segment-compatible API, then prints, as one JSON line per message, what each SDK sent (with the
// message id the SDK used). e2e/sdk_test.go runs it and checks what reached Kafka and ClickHouse.
//
//   TG_HOST=http://127.0.0.1:8080 TG_WRITE_KEY=wk RUN=r1 node send.mjs
import { Analytics } from "@segment/analytics-node";
import RudderAnalytics from "@rudderstack/rudder-sdk-node";

import { host, writeKey, run } from "./env.mjs";

const all = { Analytics: true, Advertising: true, Functional: true };
const analyticsOnly = { Analytics: true, Advertising: false, Functional: true };
const page = (path) => ({ url: `https://shop.example${path}`, title: "Shop", referrer: "https://ref.example/" });

// The calls each SDK makes. id: null lets the SDK generate the message id.
function calls(sdk) {
  const u = (n) => `${sdk}-${run}-u${n}`;
  return [
    { type: "track", id: `${sdk}-${run}-1`, userId: u(1), event: "purchase", prefs: all,
      properties: { order_value: 149, currency: "EUR", email: "Ann@Example.com " }, page: page("/checkout") },
    { type: "track", id: `${sdk}-${run}-2`, userId: u(2), event: "add_to_cart", prefs: analyticsOnly,
      properties: { order_value: 20, currency: "EUR" }, page: page("/cart") },
    { type: "page", id: `${sdk}-${run}-3`, anonymousId: `${sdk}-${run}-a3`, name: "Home", prefs: null,
      properties: {}, page: page("/") },
    { type: "identify", id: `${sdk}-${run}-4`, userId: u(4), prefs: { Analytics: false, Advertising: true },
      traits: { plan: "pro" }, page: page("/account") },
    { type: "track", id: null, userId: u(5), event: "purchase", prefs: all,
      properties: { order_value: 9, currency: "EUR" }, page: page("/pharmacy/checkout") },
  ];
}

function message(c) {
  const context = { page: c.page, userAgent: "sdk-e2e" };
  if (c.prefs) context.consent = { categoryPreferences: c.prefs };
  const m = { context };
  if (c.id) m.messageId = c.id;
  if (c.userId) m.userId = c.userId;
  if (c.anonymousId) m.anonymousId = c.anonymousId;
  if (c.type === "track") Object.assign(m, { event: c.event, properties: c.properties });
  if (c.type === "page") Object.assign(m, { name: c.name, properties: c.properties });
  if (c.type === "identify") Object.assign(m, { traits: c.traits });
  return m;
}

function report(sdk, c, messageId) {
  console.log(JSON.stringify({
    sdk, type: c.type, messageId, userKey: c.userId || c.anonymousId,
    prefs: c.prefs, pageUrl: c.page.url,
  }));
}

async function segment() {
  const errors = [];
  const analytics = new Analytics({ writeKey, host, flushAt: 10, flushInterval: 200, maxRetries: 2 });
  analytics.on("error", (err) => errors.push(err));
  const sent = calls("segment").map((c) => new Promise((resolve, reject) => {
    analytics[c.type](message(c), (err, ctx) => {
      if (err) return reject(err);
      report("segment", c, ctx.event.messageId);
      resolve();
    });
  }));
  await analytics.closeAndFlush({ timeout: 20000 });
  await Promise.all(sent);
  if (errors.length) throw new Error(`segment: ${errors.map((e) => e.reason || e.message || e).join("; ")}`);
}

async function rudder() {
  const errors = [];
  const client = new RudderAnalytics(writeKey, {
    dataPlaneUrl: host, flushAt: 10, flushInterval: 200, retryCount: 1,
    errorHandler: (err) => errors.push(err),
  });
  const sent = calls("rudder").map((c) => new Promise((resolve, reject) => {
    const m = message(c);
    m.messageId ??= `rudder-${run}-generated`; // rudder's generated id is not reported back
    client[c.type](m, (err) => {
      if (err) return reject(err);
      report("rudder", c, m.messageId);
      resolve();
    });
  }));
  await client.flush();
  await Promise.all(sent);
  if (errors.length) throw new Error(`rudder: ${errors.map((e) => e.message || e).join("; ")}`);
}

try {
  await segment();
  await rudder();
} catch (err) {
  console.error(`send.mjs: ${err.stack || err}`);
  process.exit(1);
}
