/*! tg.js — tollgate's first-party event snippet. No dependencies, no cookies, no third parties.
 *
 * <script src="/tg.js" data-write-key="wk_browser" async></script>
 *
 * It sends only to the origin that served it (POST <origin>/v1/batch, Segment's wire format, the
 * write key in the body as analytics.js does, so sendBeacon needs no header). Nothing is sent
 * until the page records a consent choice: until then events wait in a queue (at most 100, in
 * memory). Every event carries the choice as context.consent.categoryPreferences and the browser's
 * Global Privacy Control signal as context.gpc; tollgate decides per destination from those.
 *
 *   tg.consent({Analytics: true, Advertising: false})   // the banner's choice; kept in localStorage
 *   tg.page(); tg.track("purchase", {order_value: 9.5}); tg.identify("u-42")
 *   tg.choice()                                         // the stored choice, or null
 */
(function (w, d) {
  "use strict";
  if (w.tg && w.tg.version) return; // loaded twice
  var VERSION = "1";
  var CHOICE = "tg_consent", ANON = "tg_anon", USER = "tg_user", MAX_QUEUE = 100;
  var script = d.currentScript;
  // First party only: the endpoint is the origin tg.js came from, never a configurable host.
  var endpoint = new URL(script ? script.src : "/tg.js", location.href).origin + "/v1/batch";
  var writeKey = script ? script.getAttribute("data-write-key") : "";
  var queue = [];
  var stub = w.tg && w.tg.q ? w.tg.q : []; // calls made before tg.js loaded: tg.q.push([...])

  function store(k, v) {
    try {
      if (v === undefined) return localStorage.getItem(k);
      localStorage.setItem(k, v);
    } catch (e) { /* storage blocked: keep going in memory */ }
    return v;
  }

  function id() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 3) | 8).toString(16);
    });
  }

  var anonymousId = store(ANON) || store(ANON, id());
  var userId = store(USER);

  function choice() {
    try { return JSON.parse(store(CHOICE)); } catch (e) { return null; }
  }

  function gpc() { return navigator.globalPrivacyControl === true; }

  function message(type, fields) {
    var m = {
      type: type, messageId: id(), anonymousId: anonymousId,
      timestamp: new Date().toISOString(),
      context: {
        page: { url: location.href, title: d.title, referrer: d.referrer },
        userAgent: navigator.userAgent, locale: navigator.language,
        library: { name: "tg.js", version: VERSION }
      }
    };
    if (userId) m.userId = userId;
    for (var k in fields) if (fields[k] !== undefined) m[k] = fields[k];
    return m;
  }

  function send(msgs) {
    var prefs = choice();
    for (var i = 0; i < msgs.length; i++) {
      msgs[i].context.consent = { categoryPreferences: prefs };
      msgs[i].context.gpc = gpc();
    }
    var body = JSON.stringify({ batch: msgs, writeKey: writeKey, sentAt: new Date().toISOString() });
    // text/plain keeps sendBeacon free of a preflight; ingest reads the body whatever its type.
    var blob = new Blob([body], { type: "text/plain" });
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, blob))) {
      fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit",
        headers: { "Content-Type": "text/plain" } }).catch(function () {});
    }
    d.dispatchEvent(new CustomEvent("tg:sent", { detail: { count: msgs.length, consent: prefs, gpc: gpc() } }));
  }

  function enqueue(m) {
    if (choice() === null) {
      if (queue.length < MAX_QUEUE) queue.push(m);
      return;
    }
    send([m]);
  }

  var tg = {
    version: VERSION,
    consent: function (prefs) {
      store(CHOICE, JSON.stringify(prefs));
      var waiting = queue;
      queue = [];
      if (waiting.length) send(waiting);
    },
    choice: choice,
    queued: function () { return queue.length; },
    page: function (name, properties) {
      enqueue(message("page", { name: name, properties: properties || {} }));
    },
    track: function (event, properties) {
      enqueue(message("track", { event: event, properties: properties || {} }));
    },
    identify: function (uid, traits) {
      userId = store(USER, String(uid));
      enqueue(message("identify", { userId: userId, traits: traits || {} }));
    }
  };
  w.tg = tg;
  for (var i = 0; i < stub.length; i++) tg[stub[i][0]].apply(tg, stub[i].slice(1));
})(window, document);
