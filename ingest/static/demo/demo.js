// The demo page's banner: equal-weight accept / reject / customise, wired to tg.consent.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var sent = 0;

  function show() {
    var c = tg.choice(), cmp = tg.cmp();
    $("choice").textContent = cmp.length ? "from the site's CMP (" + cmp.join(", ") + ")" :
      c === null ? "none yet: events wait in the queue" : JSON.stringify(c);
    $("gpc").textContent = navigator.globalPrivacyControl === true ? "on" : "off";
    $("queued").textContent = tg.queued();
    $("sent").textContent = sent;
    $("banner").hidden = c !== null || cmp.length > 0; // a site with a CMP shows the CMP's banner
  }

  function choose(prefs) {
    prefs.Functional = true; // necessary processing needs no consent
    tg.consent(prefs);
    $("customise-panel").hidden = true;
    show();
  }

  document.addEventListener("tg:sent", function (e) { sent += e.detail.count; show(); });
  document.addEventListener("tg:cmp", show);
  $("accept-all").onclick = function () { choose({ Analytics: true, Advertising: true }); };
  $("reject-all").onclick = function () { choose({ Analytics: false, Advertising: false }); };
  $("customise").onclick = function () { $("customise-panel").hidden = false; };
  $("save").onclick = function () {
    choose({ Analytics: $("cat-analytics").checked, Advertising: $("cat-advertising").checked });
  };
  $("reopen").onclick = function () { $("banner").hidden = false; };
  $("add-to-cart").onclick = function () {
    tg.track("add_to_cart", { product: "trail-shoes", order_value: 49, currency: "EUR" }); show();
  };
  $("buy").onclick = function () {
    tg.track("purchase", { product: "trail-shoes", order_value: 49, currency: "EUR" }); show();
  };
  tg.page("Demo shop");
  show();
})();
