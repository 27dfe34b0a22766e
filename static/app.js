// The site's only script (the CSP allows no inline code). Each part is progressive
// enhancement: every page works without it.
(function () {
  "use strict";

  // Pay / Refund: once a form marked data-once is submitted, its button says what is
  // happening, a live region announces it, and the button is disabled so a second click
  // cannot send it again (the server deduplicates by checkout id anyway).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) return;
    var button = form.querySelector("button[type=submit]");
    if (!button) return;
    if (button.dataset.busyLabel) {
      button.innerHTML = '<span class="spinner" aria-hidden="true"></span> ';
      button.appendChild(document.createTextNode(button.dataset.busyLabel));
    }
    button.setAttribute("aria-busy", "true");
    var live = form.querySelector("[data-busy-announce]");
    if (live) live.textContent = live.dataset.busyAnnounce;
    // After this event: disabling the button now would drop its own submission.
    setTimeout(function () { button.disabled = true; }, 0);
  });

  // Back to a page whose form was sent: the browser may restore it as it was (busy,
  // disabled). Load it afresh instead; for the checkout that also means a new checkout id.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.querySelector("form[data-once] [aria-busy=true]")) {
      location.reload();
    }
  });

  // Checkout, demo mode only (production shows no test cards): a test card's button fills
  // the Card number field and, from the table's demo shopper, every other field still empty,
  // so paying is one more click.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fill-card]");
    if (!button) return;
    var field = document.getElementById(button.dataset.fillTarget);
    var table = button.closest("[data-demo-shopper]");
    if (!field || !table) return;
    field.value = button.dataset.fillCard;
    var shopper = JSON.parse(table.dataset.demoShopper);
    Object.keys(shopper).forEach(function (id) {
      var input = document.getElementById(id);
      if (input && !input.value) input.value = shopper[id];
    });
    var live = document.getElementById("card-filled");
    if (live) {
      live.textContent = "Form filled with test card " + button.dataset.fillCard +
        " and a demo shopper.";
    }
    field.focus();
  });

  // Refund: "Full" and "Half" fill the Refund amount field; the person still presses Refund.
  document.querySelectorAll("[data-amount-picks]").forEach(function (picks) {
    picks.hidden = false;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fill-amount]");
    if (!button) return;
    var field = document.getElementById(button.dataset.fillTarget);
    if (!field) return;
    field.value = button.dataset.fillAmount;
    var live = document.getElementById("amount-picked");
    if (live) live.textContent = "Refund amount set to " + button.dataset.fillAmount + ".";
  });

  // An order awaiting confirmation: check the page now and then, reload once its status
  // has changed (a fetch, so a screen reader is not interrupted while nothing changes).
  var status = document.querySelector("[data-refresh-seconds]");
  if (status) {
    var every = 1000 * Number(status.dataset.refreshSeconds);
    var check = function () {
      fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var now = page.getElementById(status.id);
          if (now && now.textContent.trim() !== status.textContent.trim()) location.reload();
          else setTimeout(check, every);
        })
        .catch(function () { setTimeout(check, every); });
    };
    setTimeout(check, every);
  }

  // The demo's guided tour: shown until dismissed, remembered in this browser.
  var tour = document.getElementById("tour");
  if (tour) {
    var KEY = "flex-demo-tour-dismissed";
    var dismissed = false;
    try { dismissed = localStorage.getItem(KEY) === "1"; } catch (e) { /* storage off */ }
    tour.hidden = dismissed;
    var close = tour.querySelector("[data-dismiss-tour]");
    if (close) close.addEventListener("click", function () {
      tour.hidden = true;
      try { localStorage.setItem(KEY, "1"); } catch (e) { /* storage off */ }
      var main = document.getElementById("main");
      if (main) { main.setAttribute("tabindex", "-1"); main.focus(); }
    });
  }
})();
