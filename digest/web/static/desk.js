// The editor's desk: the send's numbers update live (server-sent events, "progress"),
// and the page reloads when the edition changes ("change"; a send that finished stays,
// with its final numbers). Without JavaScript the
// page shows the numbers as they were when it was loaded.
(function () {
  "use strict";
  var marker = document.querySelector("[data-desk-events]");
  if (!marker || !window.EventSource) return;
  var source = new EventSource(marker.getAttribute("data-desk-events"));
  function set(id, value) {
    var el = document.getElementById(id);
    if (el && value !== null && value !== undefined) el.textContent = String(value);
  }
  source.addEventListener("progress", function (event) {
    var p = JSON.parse(event.data);
    set("progress-sent", p.sent);
    set("progress-total", p.total);
    set("progress-failed", p.failed);
    set("progress-uncertain", p.uncertain);
    set("progress-pending", p.pending);
    set("progress-rate", p.rate === null ? "–" : p.rate);
    set("edition-status", p.status);
    var bar = document.getElementById("progress-bar");
    if (bar) { bar.max = p.total || 1; bar.value = p.done; bar.textContent = p.percent + " %"; }
    marker.setAttribute("data-progress", p.status + " " + p.sent + "/" + p.total);
  });
  // All out: say so, and take away what acts on a send in progress (Pause, Cancel).
  function finished() {
    set("progress-title", "Sent");
    set("edition-status", "sent");
    set("send-state", "Sent.");
    document.querySelectorAll("[data-while-sending]").forEach(function (el) { el.remove(); });
    marker.textContent = "Everyone has it. Reload the page for its delivery and engagement figures.";
  }
  source.addEventListener("change", function (event) {
    source.close();
    // a send that has just finished keeps its numbers on the page; anything else reloads
    if (event.data === "sent" && document.getElementById("progress")) {
      finished();
      marker.setAttribute("data-desk-events-state", "done");
      return;
    }
    window.location.reload();
  });
  // a form sent from this page brings a fresh page: no reload may race its answer
  document.addEventListener("submit", function () { source.close(); });
  source.addEventListener("open", function () {
    marker.setAttribute("data-desk-events-state", "on");
  });
})();
