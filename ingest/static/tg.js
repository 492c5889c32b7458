/*! tg.js — tollgate's first-party event snippet. No dependencies, no cookies, no third parties.
 *
 * <script src="/tg.js" data-write-key="wk_browser" async></script>
 *
 * It sends only to the origin that served it (POST <origin>/v1/batch, Segment's wire format, the
 * write key in the body as analytics.js does, so sendBeacon needs no header). Nothing is sent
 * until the page records a consent choice: until then events wait in a queue (at most 100, in
 * memory). Every event carries the choice as context.consent.categoryPreferences and the browser's
 * Global Privacy Control signal as context.gpc; tollgate decides per destination from those.
 * A page that runs a CMP (__tcfapi, __gpp, gtag consent, OneTrust) needs no choice from tg.js:
 * events wait for the CMP's first answer (at most CMP_WAIT ms) and carry its signals as
 * context.consent's tcf, gpp, gpp_sid, gcm and cmp_ids (docs/browser.md).
 *
 *   tg.consent({Analytics: true, Advertising: false})   // the banner's choice; kept in localStorage
 *   tg.page(); tg.track("purchase", {order_value: 9.5}); tg.identify("u-42")
 *   tg.choice()                                         // the stored choice, or null
 *   tg.cmp(), tg.signals()                              // the CMP APIs found, what they said
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

  // CMP signals. TCF and GPP answer through callbacks, so their last answer is kept; Consent
  // Mode and OneTrust are globals that their own code updates, so they are read at each send.
  var CMP_WAIT = 1000, waited = false, tcf = null, gpp = null, gppSid = null, heard = {};
  var GCM = ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"];
  function api(name) { return typeof w[name] === "function"; }

  function onTCF(t, ok) {
    // Before tcloaded/useractioncomplete the CMP has no choice yet (cmpuishown: its UI is up).
    if (!ok || !t || (t.eventStatus !== "tcloaded" && t.eventStatus !== "useractioncomplete")) return;
    tcf = t.gdprApplies && typeof t.tcString === "string" && t.tcString ? t.tcString : null;
    changed("tcf");
  }

  function onGPP(p) { // GPP 1.1 pingData
    if (!p || p.signalStatus !== "ready") return;
    var sid = (p.applicableSections || []).filter(function (n) { return n > 0 && n <= 65535 && n % 1 === 0; });
    // No applicable section ([-1]) is no choice from GPP; ingest reads an empty gpp_sid as all.
    var ok = typeof p.gppString === "string" && p.gppString.indexOf("~") > 0 && sid.length;
    gpp = ok ? p.gppString : null;
    gppSid = ok ? sid : null;
    changed("gpp");
  }

  // gcm folds the dataLayer's gtag("consent", "default"|"update", {...}) commands. A default
  // for some regions only may not be this visitor's: only its refusals count.
  function gcm() {
    var dl = w.dataLayer, st = { u: {}, r: {}, d: {} }, out = null;
    for (var i = 0; dl && i < dl.length; i++) {
      var c = dl[i], o = c && c[0] === "consent" && c[2];
      if (!o || typeof o !== "object" || (c[1] !== "default" && c[1] !== "update")) continue;
      for (var k = 0; k < GCM.length; k++) {
        var v = o[GCM[k]];
        if (v !== "granted" && v !== "denied") continue;
        if (c[1] === "update") st.u[GCM[k]] = v;
        else if (!o.region) st.d[GCM[k]] = v;
        else if (v === "denied") st.r[GCM[k]] = v;
      }
    }
    for (k = 0; k < GCM.length; k++) {
      v = st.u[GCM[k]] || st.r[GCM[k]] || st.d[GCM[k]];
      if (v) (out = out || {})[GCM[k]] = v;
    }
    return out;
  }

  // oneTrust reads the active groups (",C0001,C0002,"); the groups not active are denied only
  // when OneTrust lists its groups, else ingest denies every mapped id not allowed.
  function oneTrust() {
    var g = w.OnetrustActiveGroups || w.OptanonActiveGroups;
    if (typeof g !== "string") return null;
    var ids = { allowed: g.split(",").filter(Boolean) }, all = [];
    try {
      (function walk(gs) {
        for (var i = 0; i < gs.length; i++) { all.push(gs[i].CustomGroupId); walk(gs[i].SubGroups || []); }
      })(w.OneTrust.GetDomainData().Groups);
      ids.denied = all.filter(function (id) { return typeof id === "string" && id && ids.allowed.indexOf(id) < 0; });
    } catch (e) { /* no group list */ }
    return ids;
  }

  function signals() {
    var s = null, g = gcm(), o = oneTrust();
    if (tcf) (s = s || {}).tcf = tcf;
    if (gpp) { (s = s || {}).gpp = gpp; s.gpp_sid = gppSid; }
    if (g) (s = s || {}).gcm = g;
    if (o) (s = s || {}).cmp_ids = o;
    return s;
  }

  function cmp() {
    var out = [];
    if (api("__tcfapi")) out.push("tcf");
    if (api("__gpp")) out.push("gpp");
    if (gcm()) out.push("gcm");
    if (oneTrust()) out.push("onetrust");
    return out;
  }

  // ready: with a CMP, once TCF and GPP answered or CMP_WAIT passed; without, once the page's
  // own banner recorded a choice.
  function ready() {
    if (!cmp().length) return choice() !== null;
    return waited || !((api("__tcfapi") && !heard.tcf) || (api("__gpp") && !heard.gpp));
  }

  function changed(from) {
    if (from) heard[from] = true;
    flush();
    d.dispatchEvent(new CustomEvent("tg:cmp", { detail: { cmp: cmp(), signals: signals() } }));
  }

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
    var prefs = choice(), sig = signals();
    for (var i = 0; i < msgs.length; i++) {
      var c = msgs[i].context.consent = { categoryPreferences: prefs };
      for (var k in sig) c[k] = sig[k];
      msgs[i].context.gpc = gpc();
    }
    var body = JSON.stringify({ batch: msgs, writeKey: writeKey, sentAt: new Date().toISOString() });
    // text/plain keeps sendBeacon free of a preflight; ingest reads the body whatever its type.
    var blob = new Blob([body], { type: "text/plain" });
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, blob))) {
      fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit",
        headers: { "Content-Type": "text/plain" } }).catch(function () {});
    }
    d.dispatchEvent(new CustomEvent("tg:sent", { detail: { count: msgs.length, consent: prefs, signals: sig, gpc: gpc() } }));
  }

  function flush() {
    if (!queue.length || !ready()) return;
    var waiting = queue;
    queue = [];
    send(waiting);
  }

  function enqueue(m) {
    if (queue.length < MAX_QUEUE) queue.push(m);
    flush();
  }

  var tg = {
    version: VERSION,
    consent: function (prefs) {
      store(CHOICE, JSON.stringify(prefs));
      flush();
    },
    choice: choice,
    cmp: cmp,
    signals: signals,
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
  try {
    if (api("__tcfapi")) w.__tcfapi("addEventListener", 2, onTCF);
    if (api("__gpp")) {
      w.__gpp("addEventListener", function (e) { onGPP(e && e.pingData); });
      w.__gpp("ping", onGPP);
    }
  } catch (e) { /* a broken CMP must not stop events: CMP_WAIT still ends the wait */ }
  w.addEventListener("OneTrustGroupsUpdated", function () { changed(); });
  setTimeout(function () { waited = true; changed(); }, CMP_WAIT);
  for (var i = 0; i < stub.length; i++) tg[stub[i][0]].apply(tg, stub[i].slice(1));
})(window, document);
