// Once a form marked data-once is submitted, disable its button so a second click
// cannot send it again (the server deduplicates by checkout id anyway).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.hasAttribute("data-once")) return;
  var button = form.querySelector("button[type=submit]");
  if (!button) return;
  // After this event: disabling the button now would drop its own submission.
  setTimeout(function () {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }, 0);
});
