// The console's only script: elements marked `data-poll="<url>"` are refreshed from that
// URL every 5 s (the overview's live part). Without JavaScript the page still works; it
// just does not refresh by itself.
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        el.innerHTML = html;
        el.setAttribute("data-polled", String(Date.now()));
      })
      .catch(function () { el.setAttribute("data-poll-error", String(Date.now())); })
      .finally(function () { setTimeout(function () { poll(el); }, 5000); });
  }
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    setTimeout(function () { poll(el); }, 5000);
  });
})();
