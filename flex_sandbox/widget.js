/* SenseJS stand-in. Implements the queued `fc` API of Flex's snippet:
 *   fc('setOrderId', key)     the senseKey the server will send to Flex (the demo's order id)
 *   fc('init', MID, siteId)   collect a small device fingerprint and post it, once per page
 * No card data is read. Works under a strict CSP: no eval, no inline code. */
(function () {
  "use strict";
  var script = document.getElementById("fc") || document.currentScript;
  var origin = new URL(script.src, location.href).origin;
  var queued = (window.fc && window.fc.q) || [];
  var state = { initCount: 0, senseKey: null, sent: false };
  window.fcWidget = state;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx".replace(/x/g, function () {
      return Math.floor(Math.random() * 16).toString(16);
    });
  }

  function fingerprint(mid, siteId) {
    return {
      senseKey: state.senseKey, mid: mid, siteId: siteId,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      screen: screen.width + "x" + screen.height,
      language: navigator.language,
      userAgent: navigator.userAgent
    };
  }

  var commands = {
    setOrderId: function (key) { state.senseKey = String(key); },
    init: function (mid, siteId) {
      if (state.initCount++ > 0) return; // init runs once per page
      if (!state.senseKey) state.senseKey = uuid();
      fetch(origin + "/v1/sense", {
        method: "POST", keepalive: true, mode: "cors",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(fingerprint(mid, siteId))
      }).then(function (response) { state.sent = response.ok; })
        .catch(function () { state.sent = false; });
    }
  };

  window.fc = function (name) {
    var command = commands[name];
    if (command) command.apply(null, Array.prototype.slice.call(arguments, 1));
  };
  queued.forEach(function (args) { window.fc.apply(null, args); });
})();
